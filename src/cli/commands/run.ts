import type { Command } from 'commander';
import { ChunkPool } from '../../archive/pipeline/chunk-pool.js';
import { loadConfig, type ResolvedDatasetConfig } from '../../config/config.js';
import { type RunReport, runNightly } from '../../jobs/run.js';
import type { Backend } from '../../storage/backend.js';
import { openBackend } from '../../storage/open.js';
import { formatBytes } from '../../util/bytes.js';
import { UsageError } from '../../util/errors.js';
import { Zfs } from '../../zfs/zfs.js';
import { printJson } from '../output.js';
import type { CommandDeps } from './prune.js';

/** A dataset's target, opened with the settings of its config entry (secrets only by reference). */
function openTarget(cfg: ResolvedDatasetConfig): Promise<Backend> {
  const env = (name: string | undefined) => (name ? process.env[name] : undefined);
  const keyId = env(cfg.s3.accessKeyIdEnv);
  const secret = env(cfg.s3.secretAccessKeyEnv);
  if ((cfg.s3.accessKeyIdEnv || cfg.s3.secretAccessKeyEnv) && (!keyId || !secret)) {
    throw new UsageError(`${cfg.where}.s3: the environment variables ${cfg.s3.accessKeyIdEnv ?? 'AWS_ACCESS_KEY_ID'} and ${cfg.s3.secretAccessKeyEnv ?? 'AWS_SECRET_ACCESS_KEY'} must both be set`);
  }
  if (cfg.s3.credentialsFile) process.env.AWS_SHARED_CREDENTIALS_FILE = cfg.s3.credentialsFile;
  return openBackend(cfg.target, {
    s3Endpoint: cfg.s3.endpoint,
    s3PathStyle: cfg.s3.pathStyle,
    s3Region: cfg.s3.region,
    s3Profile: cfg.s3.profile,
    storageClass: cfg.s3.storageClass,
    ...(keyId && secret ? { s3Credentials: { accessKeyId: keyId, secretAccessKey: secret } } : {}),
    sftpKey: cfg.sftp.key,
    sftpKnownHosts: cfg.sftp.knownHosts,
    sftpPasswordEnv: cfg.sftp.passwordEnv,
    sftpPassphraseEnv: cfg.sftp.passphraseEnv,
    bwlimit: cfg.bwlimit,
  });
}

export function formatRunReport(r: RunReport): string {
  const rows = [['DATASET', 'RESULT', 'SNAPSHOT', 'KIND', 'STREAM', 'STORED', 'UPLOADED', 'PRUNED', 'TIME']];
  for (const x of r.results) {
    rows.push([
      x.dataset,
      x.status === 'failed' ? `FAILED (${x.step})` : x.status,
      x.snapshot?.slice(x.snapshot.indexOf('@') + 1) ?? '-',
      x.kind ?? '-',
      x.rawBytes !== undefined ? formatBytes(x.rawBytes) : '-',
      x.storedBytes !== undefined ? formatBytes(x.storedBytes) : '-',
      x.uploadedBytes !== undefined ? formatBytes(x.uploadedBytes) : '-',
      x.prunedStreams !== undefined ? String(x.prunedStreams) : '-',
      `${x.seconds.toFixed(1)} s`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = [`${r.dryRun ? 'dry run of' : 'run of'} ${r.config}:`];
  for (const row of rows) lines.push(`  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}`);
  for (const x of r.results) {
    if (x.why) lines.push(`  ${x.dataset}: ${x.why}`);
    if (x.message) lines.push(`  ${x.dataset}: ${x.status === 'failed' ? 'ERROR ' : ''}${x.message}`);
  }
  const failed = r.results.filter((x) => x.status === 'failed').length;
  lines.push(failed === 0 ? `all ${r.results.length} dataset(s) ok` : `${failed} of ${r.results.length} dataset(s) FAILED`);
  return `${lines.join('\n')}\n`;
}

export function registerRun(program: Command, deps: CommandDeps & { setExitCode(code: number): void; zfsCommand(): string | undefined }): void {
  program
    .command('run')
    .description('the nightly job: for every dataset of a config file — lock, snapshot, send, protect the base, prune, verify')
    .requiredOption('--config <file>', 'YAML config (see docs/config.md)')
    .option('--dataset <name>', 'only this dataset')
    .option('--dry-run', 'say what would be snapshotted, sent and pruned; change nothing')
    .option('--no-progress', 'no progress line on a terminal')
    .option('--json', 'machine-readable summary')
    .action(async (o: { config: string; dataset?: string; dryRun?: boolean; progress: boolean; json?: boolean }) => {
      const config = await loadConfig(o.config);
      const pool = new ChunkPool();
      try {
        const report = await runNightly({
          config,
          zfs: Zfs.fromCommand(deps.zfsCommand()),
          pool,
          log: deps.getLog(),
          openTarget,
          only: o.dataset,
          dryRun: Boolean(o.dryRun),
          progress: o.progress,
        });
        if (o.json) printJson(report);
        else process.stdout.write(formatRunReport(report));
        if (!report.ok) deps.setExitCode(1);
      } finally {
        await pool.close();
      }
    });
}
