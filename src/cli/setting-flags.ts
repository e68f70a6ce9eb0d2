import { type Command, Option, type OptionValues } from 'commander';
import { SETTING_NAMES, type SettingName, type SettingSpec, type SettingValues, settingSpec } from '../settings/table.js';
import { parseSettingText } from '../settings/values.js';
import { UsageError } from '../util/errors.js';

type Commands = SettingSpec['commands'];

/**
 * Adds the flags of src/settings/table.ts to a command: `target` ones (every command with a
 * target) or `upload` ones (put, send), in the table's order, with its help and defaults; `also`
 * names single settings of another group the command takes too (copy: upload's --object-lock).
 */
export function addSettingFlags(cmd: Command, commands: Commands, also: readonly SettingName[] = []): Command {
  for (const name of SETTING_NAMES) {
    const spec = settingSpec(name);
    if (spec.flag === undefined || (spec.commands !== commands && !also.includes(name))) continue;
    cmd.option(spec.flag, spec.help, spec.default);
    if (spec.alias !== undefined) cmd.option(spec.alias, `the same as ${spec.flag.split(' ')[0]} (as aws-cli spells it)`);
  }
  return cmd;
}

/** The values of the table's flags a command took (and their defaults), parsed and range-checked. */
export function settingsFromFlags(o: OptionValues, commands: readonly Commands[], also: readonly SettingName[] = []): SettingValues {
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = settingSpec(name);
    if (spec.flag === undefined || (!commands.includes(spec.commands) && !also.includes(name))) continue;
    const flag = spec.flag.split(' ')[0]!;
    let value: unknown = o[new Option(spec.flag).attributeName()];
    let given = flag;
    const alias = spec.alias === undefined ? undefined : { flag: spec.alias.split(' ')[0]!, value: o[new Option(spec.alias).attributeName()] as unknown };
    if (alias?.value !== undefined) {
      if (value !== undefined && value !== spec.default) throw new UsageError(`${flag} and ${alias.flag} are the same setting: give one of them`);
      [value, given] = [alias.value, alias.flag];
    }
    if (value === undefined) continue;
    out[name] = spec.type === 'bool' ? Boolean(value) : parseSettingText(name, String(value), given);
  }
  return out as SettingValues;
}
