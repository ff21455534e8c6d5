import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { headerName } from '../../lib/adapters/common.js';
import { ROOT, ensureBuilt } from '../support/build.js';
import { warnUnsupported } from '../support/engines.js';

/** Whether this Node's V8 answers %IsInternalizedString (Node 18's does not). */
function canAskInterned(): boolean {
  try {
    execFileSync(process.execPath, ['--allow-natives-syntax', '-e', "%IsInternalizedString('x')"], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

describe('headerName', () => {
  it('rebuilds the header name of a CGI variable', () => {
    expect(headerName('HTTP_SEC_FETCH_SITE')).toBe('Sec-Fetch-Site');
    expect(headerName('HTTP_X_FORWARDED_FOR')).toBe('X-Forwarded-For');
    expect(headerName('HTTP_DNT')).toBe('Dnt');
    expect(headerName('CONTENT_TYPE')).toBe('Content-Type');
    expect(headerName('HTTP_')).toBe(null);
    expect(headerName('REMOTE_ADDR')).toBe(null);
  });

  const interned = canAskInterned();
  if (!interned) {
    warnUnsupported(
      "headerName's names as V8's interned strings",
      `Node ${process.versions.node}'s V8 has no %IsInternalizedString`,
    );
  }

  it.skipIf(!interned)(
    "gives every name as V8's interned copy of it, the first time and from its cache",
    async () => {
      /* Not a timing: V8's own view of the strings node compares with its known header names
       * on every request (a concatenation would take each comparison through the runtime). */
      await ensureBuilt();
      const common = JSON.stringify(
        pathToFileURL(join(ROOT, 'dist', 'adapters', 'common.js')).href,
      );
      const script = `
        const { headerName } = await import(${common});
        const out = [];
        for (const cgi of ['HTTP_SEC_FETCH_SITE', 'HTTP_X_REQUEST_ID', 'HTTP_ACCEPT_LANGUAGE', 'CONTENT_TYPE']) {
          out.push(%IsInternalizedString(headerName(cgi)), %IsInternalizedString(headerName(cgi)));
        }
        console.log(JSON.stringify(out));`;
      const out = execFileSync(
        process.execPath,
        ['--allow-natives-syntax', '--input-type=module', '-e', script],
        { encoding: 'utf8' },
      );
      expect(JSON.parse(out)).toEqual([true, true, true, true, true, true, true, true]);
    },
  );
});
