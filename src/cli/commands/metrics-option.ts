import type { Command } from 'commander';
import { checkMetricsPath } from '../../util/prometheus.js';

/**
 * `--metrics-file FILE` of run, verify, prune, status and drill: the command's metrics in the
 * Prometheus text format, written atomically (src/util/prometheus.ts; the metrics of each command:
 * src/jobs/metrics.ts). One file per command: each write replaces the whole file.
 */
export function addMetricsFileOption(cmd: Command): Command {
  return cmd
    .option('--metrics-file <file>', "write Prometheus metrics to this file (atomically), e.g. for node_exporter's textfile collector: one file per command")
    .hook('preAction', (_cmd, action) => {
      // A file that could not be written at the end is refused before anything is done (exit 2).
      const file = action.opts<{ metricsFile?: string }>().metricsFile;
      if (file !== undefined) checkMetricsPath(file);
    });
}
