import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { UsageError } from '../util/errors.js';
import { redactUrl } from '../util/redact.js';

/**
 * A parsed config file: its plain value plus the line of every key and list item, so each
 * validation error can name the file, line and key path ("datasets[1].keep.daily") on one line.
 */
export class ConfigSource {
  private constructor(
    readonly file: string,
    readonly value: unknown,
    private readonly lines: Map<string, number>,
  ) {}

  /** Parses YAML text; a syntax error is a one-line UsageError with its line and column. */
  static parse(text: string, file: string): ConfigSource {
    const lineCounter = new LineCounter();
    // uniqueKeys: a key written twice is an error, not a silent "last one wins".
    const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
    const error = doc.errors[0];
    if (error) {
      const at = lineCounter.linePos(error.pos[0]);
      const reason = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new UsageError(`${file}:${at.line}:${at.col}: invalid YAML: ${reason}`);
    }
    const lines = new Map<string, number>();
    const lineOf = (node: Node | null | undefined) => (node?.range ? lineCounter.linePos(node.range[0]).line : undefined);
    const walk = (node: unknown, path: string): void => {
      if (isAlias(node)) return; // an alias points at a place already walked
      if (isMap(node)) {
        for (const pair of node.items) {
          if (!isPair(pair)) continue;
          const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
          const child = path === '' ? key : `${path}.${key}`;
          const line = lineOf(pair.key as Node);
          if (line !== undefined) lines.set(child, line);
          walk(pair.value, child);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          const child = `${path}[${i}]`;
          const line = lineOf(item as Node);
          if (line !== undefined) lines.set(child, line);
          walk(item, child);
        });
      }
    };
    walk(doc.contents, '');
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new UsageError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    return new ConfigSource(file, value, lines);
  }

  /** The line of `path`, or of its nearest ancestor that has one. */
  lineOf(path: string): number | undefined {
    for (let p = path; ; ) {
      const line = this.lines.get(p);
      if (line !== undefined) return line;
      const parent = p.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
      if (parent === p) return undefined;
      p = parent;
    }
  }

  /** A UsageError (exit 2) naming file, line, key path and why. */
  error(path: string, why: string): UsageError {
    const line = this.lineOf(path);
    return new UsageError(`${this.file}${line === undefined ? '' : `:${line}`}: ${path === '' ? '' : `${path}: `}${why}`);
  }
}

/** How a value reads in an error message: strings quoted, collections named. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // A value may be a URL with a password (a target, an endpoint): never repeated (src/util/redact.ts).
  if (typeof value === 'string') return JSON.stringify(redactUrl(value));
  return String(value);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The closest allowed key to a mistyped one, when it is close enough to be a typo. */
export function didYouMean(key: string, allowed: readonly string[]): string | undefined {
  const normal = key.toLowerCase().replace(/-/g, '_');
  let best: { key: string; distance: number } | undefined;
  for (const candidate of allowed) {
    const distance = normal === candidate ? 0 : editDistance(normal, candidate);
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.key.length / 3)) ? best.key : undefined;
}
