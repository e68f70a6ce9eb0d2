/**
 * The one table renderer of the CLI: columns padded to their widest cell, two spaces apart,
 * each line indented by two; trailing spaces dropped. The first row is the header.
 */
export function renderTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map(
    (row) =>
      `  ${row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}`,
  );
}
