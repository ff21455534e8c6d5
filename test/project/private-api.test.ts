/**
 * No private Node API on the serving path: every access to an underscore-named property
 * (`x._handle`, `x?._y`) and every type that declares one (`{ _handle: ... }`, an interface
 * member `_header: ...`) in lib/ is listed here, line by line, with why it is there. A new one
 * fails this test until it is removed or justified below; an entry whose line is gone fails
 * too, so the list stays exact.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const LIB = join(ROOT, 'lib');

const NODE_ADAPTER =
  'the node:http adapter hands apps real IncomingMessage/ServerResponse objects and drives ' +
  'them as node:http does, through the members it checks for when it loads';

/** `file: line (trimmed)` → why that access is needed. */
const ALLOWED: Record<string, string> = {
  'lib/adapters/node.ts: _consuming: boolean;': NODE_ADAPTER,
  'lib/adapters/node.ts: _readableState: { resumeScheduled: boolean };': NODE_ADAPTER,
  'lib/adapters/node.ts: _header: string | null;': NODE_ADAPTER,
  'lib/adapters/node.ts: _headerSent: boolean;': NODE_ADAPTER,
  'lib/adapters/node.ts: _closed: boolean;': NODE_ADAPTER,
  "lib/adapters/node.ts: if (typeof inProto._addHeaderLines !== 'function')": NODE_ADAPTER,
  "lib/adapters/node.ts: if (typeof inProto._dump !== 'function') missing.push('IncomingMessage#_dump');":
    NODE_ADAPTER,
  'lib/adapters/node.ts: if (!r._closed) {': NODE_ADAPTER,
  'lib/adapters/node.ts: r._closed = true;': NODE_ADAPTER,
  'lib/adapters/node.ts: const head = res._header;': NODE_ADAPTER,
  'lib/adapters/node.ts: if (!res._headerSent || head === null) {': NODE_ADAPTER,
  'lib/adapters/node.ts: if (!req._consuming && !req._readableState.resumeScheduled) req._dump();':
    NODE_ADAPTER,
  'lib/adapters/node.ts: if (wire._httpMessage === this) this.detachSocket(wire as never);':
    NODE_ADAPTER,
  'lib/adapters/node.ts: _httpMessage: ServerResponse | null = null;': NODE_ADAPTER,
  'lib/adapters/node.ts: return this._writableState.corked;': NODE_ADAPTER,
  'lib/adapters/node.ts: this._writableState.corked++;': NODE_ADAPTER,
  'lib/adapters/node.ts: if (this._writableState.corked > 0) this._writableState.corked--;':
    NODE_ADAPTER,
  'lib/adapters/node.ts: asReq(req)._addHeaderLines(raw, raw.length);': NODE_ADAPTER,
  'lib/protocol/transport.ts: const s = socket as unknown as { _handle: RawHandle | null };':
    'handing a kept node:net connection to another worker: process.send() of a net.Socket reads ' +
    'and drops what arrives meanwhile, and the master would read it too; only a raw handle ' +
    'passes untouched (not on the request path: a retiring worker, between requests)',
  'lib/protocol/transport.ts: const handle = s._handle;': 'as above (handover)',
  'lib/protocol/transport.ts: s._handle = null;': 'as above (handover)',
  'lib/protocol/transport.ts: const fd = (nodeObject as { _handle?: { fd?: unknown } | null })._handle?.fd;':
    'the request watchdog answers a stuck request from its own thread, on the descriptor of a ' +
    'node:net or node:http socket, and closes a node:net listener before it ends the process; ' +
    'node exposes either descriptor only there. Read once per request when the watchdog is on ' +
    '(and once per listener); a missing fd only leaves that socket to the watchdog-less path',
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Underscore-named property accesses and declarations on one line of code. */
const ACCESS = /(?:\?\.|\.)_[A-Za-z]\w*|^_[A-Za-z]\w*\??:|[{;]\s*_[A-Za-z]\w*\??:/;

/** Lines of lib/ that touch underscore-named members, as `file: trimmed line`. */
function privateAccesses(): string[] {
  const found: string[] = [];
  for (const file of files(LIB)) {
    const name = relative(ROOT, file).split('\\').join('/');
    let inComment = false;
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      let line = raw.trim();
      if (inComment) {
        if (!line.includes('*/')) continue;
        line = line.slice(line.indexOf('*/') + 2).trim();
        inComment = false;
      }
      if (line.startsWith('/*') && !line.includes('*/')) {
        inComment = true;
        continue;
      }
      if (line.startsWith('//') || line.startsWith('*')) continue;
      const code = line.replace(/\/\/.*$/, '').replace(/'[^']*'|"[^"]*"|`[^`]*`/g, "''");
      if (ACCESS.test(code)) found.push(`${name}: ${line}`);
    }
  }
  return found;
}

describe('private Node APIs', () => {
  const found = privateAccesses();

  it('lib/ touches no underscore-named member that is not listed with its reason', () => {
    expect(found.filter((l) => !(l in ALLOWED))).toEqual([]);
  });

  it('every listed line is still there (the list is exact)', () => {
    expect(Object.keys(ALLOWED).filter((l) => !found.includes(l))).toEqual([]);
  });

  it('the serving path names none of the net.Server internals it once used', () => {
    const serving = [
      'protocol/transport.ts',
      'protocol/socket.ts',
      'protocol/listener.ts',
      'server/listen.ts',
      'server/master.ts',
      'server/worker.ts',
    ];
    const text = serving.map((f) => readFileSync(join(LIB, f), 'utf8')).join('\n');
    for (const name of ['_listen2', '_createServerHandle', '_connections', '_emitCloseIfDrained']) {
      expect(text.includes(name), name).toBe(false);
    }
  });
});
