import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every file below a local archive root, as keys relative to it. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out.sort();
}

/** Decompresses concatenated chunk objects with the zstd CLI: what a user without this tool would do. */
export function zstdDecompress(concatenated: Buffer): Buffer {
  return execFileSync('zstd', ['-d', '-c', '-q'], { input: concatenated, maxBuffer: 1 << 30 });
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
