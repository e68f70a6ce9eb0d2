import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend } from '../../src/storage/backend.js';
import { CLI, runCli } from './cli.js';

export interface KillTrialOptions {
  url: string;
  env: NodeJS.ProcessEnv;
  backend: Backend;
  /** The stream to archive (a file, so every run reads the same bytes). */
  input: string;
  dataset: string;
  chunkSize: string;
  /** Stored bytes of the stream archived without interruption, for the "fewer bytes" check. */
  freshUploadBytes: number;
  /** Chunks of the whole stream: the kill lands after a random number of them is stored. */
  totalChunks: number;
  random: () => number;
}

export interface KillTrialResult {
  ok: boolean;
  /** What happened, for the report: when the kill landed and what the rerun did. */
  story: string;
  problems: string[];
}

async function journalChunks(backend: Backend, dataset: string): Promise<number> {
  const keys: string[] = [];
  await backend.list(`${dataset}/`, (o) => keys.push(o.key));
  const journal = keys.find((k) => k.endsWith('/journal.json'));
  if (!journal) return 0;
  try {
    return (JSON.parse((await backend.getBuffer(journal)).toString()) as { chunks: unknown[] }).chunks.length;
  } catch {
    return 0; // being rewritten
  }
}

async function manifests(backend: Backend, dataset: string): Promise<string[]> {
  const keys: string[] = [];
  await backend.list(`${dataset}/`, (o) => keys.push(o.key));
  return keys.filter((k) => k.endsWith('/manifest.json'));
}

/**
 * One trial: `put` killed with SIGKILL at a random point after its first stored chunk, then
 * rerun. Passes when no manifest exists for the incomplete stream, the rerun completes having
 * uploaded strictly less than a fresh run, deep verify is clean and restore is byte-identical.
 */
export async function runKillTrial(o: KillTrialOptions): Promise<KillTrialResult> {
  const problems: string[] = [];
  const child = spawn(process.execPath, [CLI, 'put', '--to', o.url, '--input', o.input, '--dataset', o.dataset, '--chunk-size', o.chunkSize, '--no-progress'], {
    env: { ...process.env, ...o.env },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let finished = false;
  void exited.then(() => (finished = true));
  // A random point strictly inside the upload: after 1 … total-1 stored chunks, plus jitter.
  const killAfter = 1 + Math.floor(o.random() * (o.totalChunks - 1));
  while (!finished && (await journalChunks(o.backend, o.dataset)) < killAfter) await sleep(10);
  await sleep(Math.floor(o.random() * 30));
  const killedEarly = !finished;
  child.kill('SIGKILL');
  await exited;
  const storedBefore = await journalChunks(o.backend, o.dataset);
  const committedBefore = await manifests(o.backend, o.dataset);
  let story = killedEarly ? `killed with ${storedBefore} chunk(s) in the journal` : 'finished before the kill';
  if (committedBefore.length > 0) story += ', manifest already written (complete stream)';

  const rerun = await runCli(['put', '--to', o.url, '--input', o.input, '--dataset', o.dataset, '--chunk-size', o.chunkSize, '--json', '--no-progress'], { env: o.env });
  if (rerun.code !== 0) problems.push(`rerun exit ${rerun.code}: ${rerun.stderr.trim()}`);
  else {
    const result = JSON.parse(rerun.stdout) as { status: string; uploadedBytes: number; chunksReused: number };
    story += `; rerun ${result.status}, reused ${result.chunksReused} chunk(s), uploaded ${result.uploadedBytes} bytes`;
    const resumed = committedBefore.length === 0 && storedBefore > 0;
    if (resumed && !(result.uploadedBytes < o.freshUploadBytes)) problems.push(`resumed run uploaded ${result.uploadedBytes} bytes, a fresh one ${o.freshUploadBytes}`);
  }
  const verify = await runCli(['verify', o.url, o.dataset, '--deep', '--stale-after', '0'], { env: o.env });
  if (verify.code !== 0) problems.push(`deep verify exit ${verify.code}: ${verify.stdout.trim()} ${verify.stderr.trim()}`);
  const restored = await runCli(['restore', '--from', o.url, o.dataset, '--output', '-', '--no-progress'], { env: o.env });
  if (restored.code !== 0) problems.push(`restore exit ${restored.code}: ${restored.stderr.trim()}`);
  else if (!restored.stdoutBytes.equals(readFileSync(o.input))) problems.push('restored stream differs from the input');
  return { ok: problems.length === 0, story, problems };
}
