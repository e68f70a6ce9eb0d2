import { redactText } from '../../util/redact.js';

/**
 * Writes a command's human report (stdout, or stderr when stdout carries a stream): the one way
 * text reaches the user besides printJson (json.ts), errors (src/cli/exit.ts) and the log, so no
 * password of a URL can pass (src/util/redact.ts).
 */
export function printText(text: string, to: NodeJS.WritableStream = process.stdout): void {
  to.write(redactText(text));
}
