import type { Command, OptionValues } from 'commander';
import { addSettingFlags } from '../setting-flags.js';

/** The options put and send share besides the settings: progress and --json. */
export interface UploadCliOptions extends OptionValues {
  progress: boolean;
  json?: boolean;
}

/** The flags of put and send: target settings, upload settings, progress and --json. */
export function addUploadFlags(cmd: Command): Command {
  return addSettingFlags(addSettingFlags(cmd, 'target'), 'upload').option('--no-progress', 'no progress line on a terminal').option('--json', 'print a machine-readable summary');
}
