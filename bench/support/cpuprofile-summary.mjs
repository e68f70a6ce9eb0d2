#!/usr/bin/env node
/**
 * Top self-time functions of every V8 CPU profile in a directory (one file per thread, as
 * `node --cpu-prof --cpu-prof-dir DIR` writes them for the main thread and each worker).
 *
 *   node bench/support/cpuprofile-summary.mjs DIR [TOP=15]
 *
 * Time in native code (zstd, OpenSSL SHA-256, memcpy, syscalls) is counted on the JS function
 * that called into it, which is what the profiler samples.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, topArg = '15'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: cpuprofile-summary.mjs DIR [TOP]');
  process.exit(2);
}
const top = Number(topArg);

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
for (const file of files) {
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const node = byId.get(profile.samples[i]);
    const cf = node.callFrame;
    const where = cf.url ? `${cf.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, '$1/')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const busy = [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).reduce((n, [, v]) => n + v, 0);
  // File names: CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
  const tid = file.split('.')[4];
  console.log(`\n## ${file} (${tid === '0' ? 'main thread' : `worker thread ${tid}`}): ${(total / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s not idle`);
  console.log('| self ms | % of profiled | function |');
  console.log('|---:|---:|---|');
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`| ${v.toFixed(0)} | ${((100 * v) / total).toFixed(1)} | ${k.replace(/\|/g, '\\|')} |`);
  }
}
