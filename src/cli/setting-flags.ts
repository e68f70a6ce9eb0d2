import { type Command, Option, type OptionValues } from 'commander';
import { SETTING_NAMES, type SettingSpec, type SettingValues, settingSpec } from '../settings/table.js';
import { parseSettingText } from '../settings/values.js';

type Commands = SettingSpec['commands'];

/**
 * Adds the flags of src/settings/table.ts to a command: `target` ones (every command with a
 * target) or `upload` ones (put, send), in the table's order, with its help and defaults.
 */
export function addSettingFlags(cmd: Command, commands: Commands): Command {
  for (const name of SETTING_NAMES) {
    const spec = settingSpec(name);
    if (spec.flag !== undefined && spec.commands === commands) cmd.option(spec.flag, spec.help, spec.default);
  }
  return cmd;
}

/** The values of the table's flags a command took (and their defaults), parsed and range-checked. */
export function settingsFromFlags(o: OptionValues, commands: readonly Commands[]): SettingValues {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = settingSpec(name);
    if (spec.flag === undefined || !commands.includes(spec.commands)) continue;
    const value: unknown = o[new Option(spec.flag).attributeName()];
    if (value === undefined) continue;
    out[name] = spec.type === 'bool' ? Boolean(value) : parseSettingText(name, String(value), spec.flag.split(' ')[0]!);
  }
  return out as SettingValues;
}
