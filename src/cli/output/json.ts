/** JSON as every command prints it: indented by 2, bigints as decimal strings. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
}

export function printJson(value: unknown): void {
  process.stdout.write(jsonText(value));
}
