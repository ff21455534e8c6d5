/**
 * The package version, read from tsgi's package.json: one level above lib/ and dist/, two above
 * dist/cjs/ (the CommonJS build).
 */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'tsgi' && pkg.version) return pkg.version;
    } catch {
      /* try the next one */
    }
  }
  return '0.0.0';
}

export const VERSION: string = readVersion();
