import type { Command, OptionValues } from 'commander';
import { type Attachment, checkUniqueNames, parseAttachFlag, readAttachmentFile } from '../../jobs/attachments.js';
import { addSettingFlags } from '../setting-flags.js';

/** The options put and send share besides the settings: progress and --json. */
export interface UploadCliOptions extends OptionValues {
  progress: boolean;
  json?: boolean;
  attach: string[];
}

/** The flags of put and send: target settings, upload settings, progress and --json. */
export function addUploadFlags(cmd: Command): Command {
  return addSettingFlags(addSettingFlags(cmd, 'target'), 'upload')
    .option('--attach <NAME=FILE>', 'keep this regular file with the stream under NAME (repeatable; e.g. vmadm.json=/tmp/zone.json)', (v: string, all: string[]) => [...all, v], [])
    .option('--no-progress', 'no progress line on a terminal')
    .option('--json', 'print a machine-readable summary');
}

/** The `--attach` files, read before anything is uploaded (a bad one stops the command, exit 2). */
export function attachFlags(o: UploadCliOptions): Attachment[] {
  const files = o.attach.map(parseAttachFlag);
  checkUniqueNames(files);
  return files.map((f) => readAttachmentFile(f.name, f.path));
}
