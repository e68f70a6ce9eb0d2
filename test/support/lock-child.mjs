#!/usr/bin/env node
/**
 * One contender in the two-process lock tests: opens the target, waits until a common start
 * time, tries to take the dataset lock, prints one JSON line (acquired or refused), holds the
 * lock for a while and releases it. Uses the built code (dist/), as the CLI does.
 *
 * Usage: node lock-child.mjs TARGET DATASET STATE_DIR HOST START_AT_MS HOLD_MS SETTLE_MS
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { acquireDatasetLock } from '../../dist/archive/lease.js';
import { openBackend } from '../../dist/storage/open.js';

const [target, dataset, stateDir, host, startAt, holdMs, settleMs] = process.argv.slice(2);
const backend = await openBackend(target);
await sleep(Math.max(0, Number(startAt) - Date.now()));
try {
  const lock = await acquireDatasetLock({ dataset, backend, stateDir, host, settleMs: Number(settleMs) });
  process.stdout.write(`${JSON.stringify({ status: 'acquired', pid: process.pid, host })}\n`);
  await sleep(Number(holdMs));
  await lock.release();
} catch (err) {
  process.stdout.write(`${JSON.stringify({ status: 'refused', pid: process.pid, host, error: err.name, message: err.message })}\n`);
}
await backend.close();
