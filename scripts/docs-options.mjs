/**
 * Writes the README's option table from the options table of lib/server/config.ts (the one
 * `tsgi serve --help` and the config loader use), between the two marker comments.
 * `npm run docs:options` builds first; test/server/config.test.ts fails when the README is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  optionsMarkdown,
  README_OPTIONS_BEGIN,
  README_OPTIONS_END,
} from '../dist/server/config.js';

const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const text = readFileSync(readme, 'utf8');
const begin = text.indexOf(README_OPTIONS_BEGIN);
const end = text.indexOf(README_OPTIONS_END);
if (begin < 0 || end < begin) {
  console.error(
    `README.md: the markers ${README_OPTIONS_BEGIN} and ${README_OPTIONS_END} are missing`,
  );
  process.exit(1);
}
const next =
  text.slice(0, begin + README_OPTIONS_BEGIN.length) + '\n' + optionsMarkdown() + text.slice(end);
if (next === text) {
  console.log('README.md: the option table is up to date');
} else {
  writeFileSync(readme, next);
  console.log('README.md: option table written');
}
