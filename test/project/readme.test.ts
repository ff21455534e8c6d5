/**
 * The README and docs/ as a newcomer reads them: the quick start as written, the two diagrams,
 * every relative link pointing at a file that exists, one benchmark table (the rest in
 * docs/benchmarks.md), and none of the words that only the project's own history explains.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/build.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => join('docs', f));

describe('README', () => {
  it('keeps the quick start: npm install, then HTTP on 127.0.0.1:8000', () => {
    expect(README).toContain(
      '```sh\nnpm install\nnpx tsgi serve examples/hello.mjs      # HTTP on 127.0.0.1:8000\n```',
    );
  });

  it("has the request's path and the SIGHUP reload as Mermaid diagrams", () => {
    const diagrams = [...README.matchAll(/```mermaid\n([^]*?)```/g)].map((m) => m[1]!);
    expect(diagrams.map((d) => d.split('\n')[0])).toEqual(['flowchart LR', 'sequenceDiagram']);
    for (const node of ['Browser', 'nginx', 'FastCGI, SCGI or uwsgi', 'tsgi master', 'worker 1']) {
      expect(diagrams[0]).toContain(node);
    }
    for (const step of ['SIGHUP', 'fork', 'ready', 'stop', 'exits']) {
      expect(diagrams[1]).toContain(step);
    }
  });

  it('leaves one benchmark table and links the rest', () => {
    const section = README.slice(
      README.indexOf('## Benchmarks'),
      README.indexOf('## Architecture'),
    );
    expect(section.match(/^\|---/gm)?.length).toBe(1);
    expect(section).toContain('[docs/benchmarks.md](docs/benchmarks.md)');
  });

  it('explains WSGI where it names it, and names no issue or design file', () => {
    for (const file of ['README.md', ...DOCS]) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      expect(text, file).not.toMatch(/\bissues? ?-?#?[0-9]/i);
      expect(text, file).not.toMatch(/DESIGN\.md|PROTOCOLS\.md/);
    }
    const first = README.search(/\bWSGI\b|PEP 3333/);
    expect(README.slice(first, first + 120)).toMatch(
      /WSGI \(the interface, specified in PEP 3333, through which gunicorn and uWSGI\s+run Python apps\)/,
    );
  });

  it('every relative link points at a file that exists', () => {
    for (const file of ['README.md', ...DOCS]) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#:\s]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(join(ROOT, dirname(file), m[1]!)), `${file}: ${m[1]}`).toBe(true);
      }
    }
  });
});
