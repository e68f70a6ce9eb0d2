import type { ConfigChecker } from './checks.js';

/**
 * The `drill:` section of the config (`zfs-offsite drill --config FILE`, README "Drills"):
 *
 *   drill:
 *     pool: scratch            # where the scratch dataset is received (required for drill)
 *     datasets: [tank/home]    # default: every dataset of the config
 *     sample: false            # true: a random older snapshot instead of the newest
 */
export interface DrillConfig {
  pool?: string;
  datasets?: string[];
  sample: boolean;
}

export const DRILL_KEYS = ['pool', 'datasets', 'sample'] as const;

const NAME = { re: /^(?!.*\/\.\.?(\/|$))(?=.{1,255}$)[A-Za-z0-9][A-Za-z0-9_.:\- ]*(\/[A-Za-z0-9_.:\- ]+)*$/, what: 'a ZFS dataset or pool name such as tank/home' };

export function readDrillSection(c: ConfigChecker, value: unknown): DrillConfig {
  const raw = c.mapping(value, 'drill', DRILL_KEYS);
  const out: DrillConfig = { sample: raw.sample === undefined ? false : c.boolean(raw.sample, 'drill.sample') };
  if (raw.pool !== undefined) out.pool = c.string(raw.pool, 'drill.pool', NAME);
  if (raw.datasets !== undefined) {
    if (!Array.isArray(raw.datasets) || raw.datasets.length === 0) throw c.fail('drill.datasets', 'expected a non-empty list of datasets (or leave it out: every dataset of the config)');
    out.datasets = raw.datasets.map((d, i) => c.string(d, `drill.datasets[${i}]`, NAME));
  }
  return out;
}
