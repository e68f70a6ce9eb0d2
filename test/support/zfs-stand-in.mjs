#!/usr/bin/env node
/**
 * A stand-in for the `zfs` command, for testing `send` on machines without ZFS. It answers the
 * few subcommands zfs-offsite runs from a JSON state file (ZFS_STAND_IN_STATE) and "sends"
 * real zfs send streams recorded from OpenZFS (test/fixtures/streams). Every invocation's argv
 * is appended to the state's `log` file, so tests can assert the exact zfs arguments.
 * The real-ZFS end-to-end suite (a VM with OpenZFS) exercises the same paths for real.
 *
 * State: { log, datasets: { NAME: { encryption, snapshots: [{ name, guid, createtxg, creation }],
 *          bookmarks: [...] } }, streams: { "<fromguid or 0>:<toguid>": "/path/to/stream" },
 *          send: { failAfterBytes?, exitCode?, stderr? } }
 */
import { appendFileSync, readFileSync } from 'node:fs';

const state = JSON.parse(readFileSync(process.env.ZFS_STAND_IN_STATE, 'utf8'));
const args = process.argv.slice(2);
appendFileSync(state.log, `${JSON.stringify(args)}\n`);

function fail(message, code = 1) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function entries(datasetName) {
  const ds = state.datasets[datasetName];
  if (!ds) fail(`cannot open '${datasetName}': dataset does not exist`);
  return [
    ...ds.snapshots.map((s) => ({ ...s, full: `${datasetName}@${s.name}` })),
    ...(ds.bookmarks ?? []).map((s) => ({ ...s, full: `${datasetName}#${s.name}` })),
  ];
}

function find(fullName) {
  const dataset = fullName.split(/[@#]/)[0];
  const hit = entries(dataset).find((e) => e.full === fullName);
  if (!hit) fail(`cannot open '${fullName}': ${fullName.includes('#') ? 'bookmark' : 'snapshot'} does not exist`);
  return hit;
}

const row = (e) => `${e.full}\t${e.guid}\t${e.createtxg}\t${e.creation}`;
const [cmd, ...rest] = args;

if (cmd === 'version') {
  process.stdout.write('zfs-2.3.2-1\nzfs-kmod-2.3.2-1\n');
} else if (cmd === 'get') {
  const name = rest[rest.length - 1];
  const ds = state.datasets[name];
  if (!ds) fail(`cannot open '${name}': dataset does not exist`);
  process.stdout.write(`${ds.encryption}\n`);
} else if (cmd === 'list') {
  const name = rest[rest.length - 1];
  if (rest.includes('-d')) process.stdout.write(entries(name).sort((a, b) => a.createtxg - b.createtxg).map(row).join('\n') + '\n');
  else process.stdout.write(`${row(find(name))}\n`);
} else if (cmd === 'send') {
  const target = find(rest[rest.length - 1]);
  const baseAt = rest.findIndex((a) => a === '-i' || a === '-I');
  const from = baseAt >= 0 ? find(rest[baseAt + 1]).guid : '0';
  const path = state.streams[`${from}:${target.guid}`];
  if (!path) fail(`stand-in has no stream ${from}:${target.guid}`);
  let bytes = readFileSync(path);
  const plan = state.send ?? {};
  if (plan.failAfterBytes !== undefined) bytes = bytes.subarray(0, plan.failAfterBytes);
  process.stdout.write(bytes, () => {
    if (plan.exitCode) fail(plan.stderr ?? 'send failed', plan.exitCode);
  });
} else {
  fail(`stand-in: unsupported zfs ${args.join(' ')}`, 2);
}
