/**
 * URL of a compiled worker script beside `fromUrl`. Worker threads need JavaScript: when
 * the caller runs from TypeScript sources (vitest), the script is taken from `dist/`, which
 * `npm test` builds first.
 */
export function workerUrl(fromUrl: string, scriptName: string): URL {
  const url = new URL(scriptName, fromUrl);
  if (fromUrl.endsWith('.ts')) {
    url.pathname = url.pathname.replace(/\/src\/(?!.*\/src\/)/, '/dist/');
  }
  return url;
}
