/** Parses the `export KEY=value` lines (values optionally quoted) that the server scripts write. */
export function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m?.[1]) continue;
    vars[m[1]] = (m[2] ?? '').trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}
