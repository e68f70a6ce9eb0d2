import { UsageError } from '../util/errors.js';

/**
 * Splits a command prefix such as `ssh -p 2222 root@127.0.0.1 zfs` into words. Supports
 * single and double quotes and backslash escapes; nothing is ever evaluated by a shell.
 */
export function splitCommandWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new UsageError(`unbalanced quote in zfs command: ${text}`);
  if (inWord) words.push(word);
  if (words.length === 0) throw new UsageError('the zfs command is empty');
  return words;
}

/** POSIX single-quoting, for arguments that a remote shell (ssh) will re-split. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./#-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const VALID_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:\- ]*(\/[A-Za-z0-9_.:\- ]+)*([@#][A-Za-z0-9_.:\- ]+)?$/;

/** Checks a dataset/snapshot/bookmark name against ZFS's naming rules before it goes anywhere. */
export function checkZfsName(name: string, what: string): void {
  // ZFS also refuses "." and ".." as components; as archive paths they would climb out of a dataset.
  const selfOrParent = name.split(/[/@#]/).some((part) => part === '.' || part === '..');
  if (!VALID_NAME.test(name) || name.length > 255 || selfOrParent) {
    throw new UsageError(`invalid ZFS ${what} name: ${JSON.stringify(name)}`);
  }
}

/** A dataset name (no @snapshot or #bookmark part), as a config file's `name:` must be. */
export function checkDatasetName(name: string, what = 'dataset'): void {
  checkZfsName(name, what);
  if (/[@#]/.test(name)) throw new UsageError(`invalid ZFS ${what} name: ${JSON.stringify(name)} (a dataset name has no @snapshot or #bookmark part)`);
}
