import { type Command, Option, type OptionValues } from 'commander';
import { loadConfig, type ZfsOffsiteConfig } from '../../config/config.js';
import { type ConfigTarget, configTargets, type OpenTarget } from '../../jobs/config-targets.js';
import { SETTING_NAMES, type SettingValues, settingSpec } from '../../settings/table.js';
import { UsageError } from '../../util/errors.js';
import { settingsFromFlags } from '../setting-flags.js';
import { openTarget } from './common.js';

/**
 * `--config FILE [--dataset NAME]` of list, verify, restore and prune: the targets and
 * credentials of `run`'s config (src/jobs/config-targets.ts groups its datasets by target).
 * Precedence, most explicit first: a setting flag given on the command line, then the config's
 * value, then the environment (ZFS_OFFSITE_TARGET is never read with --config).
 */

export interface ConfigCliOptions extends OptionValues {
  config?: string;
  dataset?: string;
}

/** Adds `--config FILE` and, for commands over several datasets, `--dataset NAME`. */
export function addConfigOptions(cmd: Command, withDataset: boolean): Command {
  cmd.option('--config <file>', "the targets and credentials of run's YAML config (see docs/config.md), instead of TARGET");
  if (withDataset) cmd.option('--dataset <name>', 'with --config: only this dataset of the config (an entry, or a descendant of a recursive one)');
  return cmd;
}

/**
 * The setting flags typed on the command line (not their defaults): with --config they replace
 * the config's value for every target (a flag of another target kind changes nothing there).
 */
export function explicitSettings(cmd: Command, o: OptionValues): SettingValues {
  const all = settingsFromFlags(o, ['target']) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = settingSpec(name);
    if (all[name] === undefined || spec.flag === undefined) continue;
    // A flag without a default has a value only when it was given (under any spelling).
    if (spec.default === undefined || cmd.getOptionValueSource(new Option(spec.flag).attributeName()) === 'cli') out[name] = all[name];
  }
  return out as SettingValues;
}

/** `--dataset` needs `--config`; `--config` and a positional target exclude each other. */
export function checkConfigUse(o: ConfigCliOptions, targetGiven: boolean, targetName: string): void {
  if (o.config === undefined) {
    if (o.dataset !== undefined) throw new UsageError('--dataset goes with --config (without it the dataset is an argument: see --help)');
    return;
  }
  if (targetGiven) throw new UsageError(`--config and ${targetName} exclude each other: the config names each dataset's target (use --dataset NAME for one dataset)`);
}

/** The config and its datasets (all, or `--dataset`'s) grouped by target, with the flags' overrides. */
export async function loadConfigTargets(cmd: Command, o: ConfigCliOptions): Promise<{ config: ZfsOffsiteConfig; groups: ConfigTarget[] }> {
  const config = await loadConfig(o.config!);
  return { config, groups: configTargets(config, o.dataset, explicitSettings(cmd, o)) };
}

/** Opens a group's target as `run` opens a dataset's. */
export const openGroup: OpenTarget = (group) => openTarget(group.target, group.settings);
