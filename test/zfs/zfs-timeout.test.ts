/**
 * A zfs lookup that hangs (a suspended pool leaves `zfs list` waiting for ever) must not hold a
 * put's commit up: Zfs.run's timeout stops the command, and the best-effort txg lookup then
 * leaves the txgs out (src/zfs/snapshot-txgs.ts).
 */
import { readFileSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { StreamSummary } from '../../src/stream/validator.js';
import { OperationalError } from '../../src/util/errors.js';
import { localSnapshotTxgs } from '../../src/zfs/snapshot-txgs.js';
import { Zfs } from '../../src/zfs/zfs.js';

/** A `zfs` that never answers and ignores SIGTERM (only SIGKILL ends it). */
const hanging = () => new Zfs(['bash', '-c', 'trap "" TERM; while :; do sleep 0.1; done', 'zfs']);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('zfs commands with a timeout', () => {
  it('a hanging command is stopped (SIGTERM, then SIGKILL) and fails with kind zfs-timeout', async () => {
    const started = Date.now();
    const err = await hanging()
      .run(['list', '-H', 'tank'], { timeoutMs: 300 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(OperationalError);
    expect((err as OperationalError).kind).toBe('zfs-timeout');
    expect((err as Error).message).toBe('zfs list -H tank did not answer within 300 ms and was stopped');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('kills the command it gave up on', async () => {
    const zfs = new Zfs(['bash', '-c', 'trap "" TERM; echo $$ > "$0"; while :; do sleep 0.1; done']);
    const pidFile = `/tmp/zfs-timeout-${process.pid}.pid`;
    await zfs.run([pidFile], { timeoutMs: 300 }).catch(() => undefined);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    rmSync(pidFile);
    expect(alive(pid)).toBe(false);
  });

  it('a command that answers within its timeout is read as before', async () => {
    const out = await new Zfs(['bash', '-c', 'echo "$@"', 'zfs']).run(['list', '-H', 'tank'], { timeoutMs: 10_000 });
    expect(out).toBe('list -H tank\n');
  });

  it('the best-effort txg lookup of a put leaves the txgs out instead of waiting on a hanging zfs', async () => {
    const summary = { substreams: [{ toname: 'tank/data@s1', toguid: 11n, fromguid: 0n }] } as unknown as StreamSummary;
    const txgs = await localSnapshotTxgs(hanging(), summary, 300);
    expect(txgs.size).toBe(0);
  });
});
