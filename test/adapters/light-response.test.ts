/**
 * The light Response (lib/adapters/light-response.ts) against the real one: for each way of
 * making a response, the same status, statusText, ok, headers (names, order, combined
 * repeats, Set-Cookie apart) and body, and the same error for arguments the real constructor
 * refuses; what a light response keeps (its parts) is exactly what the real one would send.
 */
import { describe, expect, it } from 'vitest';
import {
  installLightResponse,
  lightResponseClass,
  responseParts,
} from '../../lib/adapters/light-response.js';

const NativeResponse = globalThis.Response;
const LightResponse = lightResponseClass();

type Args = [unknown, unknown?];

async function seen(r: Response) {
  return {
    status: r.status,
    statusText: r.statusText,
    ok: r.ok,
    headers: [...r.headers],
    cookies: r.headers.getSetCookie(),
    body: r.body === null ? null : Buffer.from(await r.arrayBuffer()).toString('latin1'),
  };
}

const make = (C: typeof Response, args: Args): Response =>
  new C(...(args as ConstructorParameters<typeof Response>));

const LIGHT: [string, Args][] = [
  ['no arguments', [undefined]],
  ['a string', ['Hello, world!\n']],
  ['a string with a type', ['<p>hi</p>', { headers: { 'Content-Type': 'text/html' } }]],
  ['UTF-8 text', ['grüße €', { status: 201, statusText: 'Made' }]],
  ['bytes', [Buffer.from('bytes\x00\xff', 'latin1'), { status: 404 }]],
  ['null with 204', [null, { status: 204 }]],
  ['null with 304', [null, { status: 304, headers: [['ETag', '"x"']] }]],
  [
    'repeated headers and cookies',
    [
      'x',
      {
        headers: [
          ['X-B', '2'],
          ['Set-Cookie', 'a=1'],
          ['x-a', '1'],
          ['X-B', '3'],
          ['set-cookie', 'b=2; Path=/'],
        ],
      },
    ],
  ],
  [
    'a Headers',
    [
      'x',
      {
        headers: new Headers([
          ['Vary', 'Accept'],
          ['Set-Cookie', 'c=3'],
        ]),
      },
    ],
  ],
  ['an empty string', ['', { status: 500 }]],
  ['a null-prototype init', ['x', Object.assign(Object.create(null), { status: 202 })]],
];

const REAL: [string, Args][] = [
  ['a value with spaces around', ['x', { headers: { 'X-A': '  padded  ' } }]],
  ['a number value', ['x', { headers: { 'X-N': 5 } }]],
  ['a stream body', [new Blob(['blob'])]],
  ['an ArrayBuffer body', [new ArrayBuffer(3)]],
  ['an init that is a Response', ['x', new NativeResponse(null, { status: 203 })]],
];

const THROWS: [string, Args][] = [
  ['a status below 200', ['x', { status: 199 }]],
  ['a status above 599', ['x', { status: 600 }]],
  ['a body with 204', ['x', { status: 204 }]],
  ['a body with 304', [new Uint8Array(1), { status: 304 }]],
  ['a bad header name', ['x', { headers: { 'Bad Name': 'v' } }]],
  ['a header value with a newline', ['x', { headers: { 'X-A': 'a\nb' } }]],
  ['a bad statusText', ['x', { statusText: 'a\nb' }]],
];

describe('LightResponse', () => {
  it.each(LIGHT)('keeps %s as parts, and reads as the real Response does', async (_, args) => {
    const light = make(LightResponse, args);
    expect(responseParts(light)).not.toBeNull();
    expect(light).toBeInstanceOf(NativeResponse);
    expect(await seen(light)).toEqual(await seen(make(NativeResponse, args)));
  });

  it.each(LIGHT)('keeps for %s what the real Response sends', async (_, args) => {
    const parts = responseParts(make(LightResponse, args))!;
    const real = make(NativeResponse, args);
    const headers: [string, string][] = [];
    real.headers.forEach((v, n) => n !== 'set-cookie' && headers.push([n, v]));
    for (const c of real.headers.getSetCookie()) headers.push(['set-cookie', c]);
    expect([
      ...parts.headers.filter((h) => h[0] !== 'set-cookie'),
      ...parts.headers.filter((h) => h[0] === 'set-cookie'),
    ]).toEqual(headers);
    expect(parts.status).toBe(real.status);
    expect(parts.statusText).toBe(real.statusText);
    const body = parts.body === null ? null : Buffer.from(parts.body);
    expect(body).toEqual(real.body === null ? null : Buffer.from(await real.arrayBuffer()));
  });

  it.each(REAL)('makes %s a real Response at once', async (_, args) => {
    const r = make(LightResponse, args);
    expect(responseParts(r)).toBeNull();
    expect(await seen(r)).toEqual(await seen(make(NativeResponse, args)));
  });

  it.each(THROWS)('throws for %s what the real constructor throws', (_, args) => {
    let want: unknown;
    try {
      make(NativeResponse, args);
    } catch (e) {
      want = e;
    }
    expect(want).toBeInstanceOf(Error);
    expect(() => make(LightResponse, args)).toThrow(want as Error);
  });

  it('copies bytes: changing them after construction changes nothing', async () => {
    const bytes = Buffer.from('abc');
    const r = new LightResponse(bytes);
    bytes[0] = 0x7a;
    expect(await r.text()).toBe('abc');
  });

  it('becomes real once its headers are read: later changes are what is sent', async () => {
    const r = new LightResponse('x');
    r.headers.set('X-Late', 'yes');
    expect(responseParts(r)).toBeNull();
    expect(r.headers.get('x-late')).toBe('yes');
    expect(await r.text()).toBe('x');
  });

  it('is the global Response once installed; instanceof holds both ways; statics are real', async () => {
    expect(installLightResponse()).toBe(true);
    expect(globalThis.Response).toBe(LightResponse);
    const light = new Response('x');
    expect(responseParts(light)).not.toBeNull();
    expect(light instanceof Response).toBe(true);
    expect(new NativeResponse('y') instanceof Response).toBe(true);
    expect(Response.json({ a: 1 }) instanceof Response).toBe(true);
    expect(await Response.json({ a: 1 }).text()).toBe('{"a":1}');
    class Sub extends Response {}
    const sub = new Sub('s', { status: 201 });
    expect(sub).toBeInstanceOf(Sub);
    expect(sub.status).toBe(201);
    expect(await sub.text()).toBe('s');
    expect(await new Response('c').clone().text()).toBe('c');
    expect(Object.prototype.toString.call(light)).toBe('[object Response]');
    expect(installLightResponse()).toBe(true);
  });
});

describe('installLightResponse', () => {
  it('leaves a Response another library installed in place', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'Response')!;
    class Theirs extends NativeResponse {}
    Object.defineProperty(globalThis, 'Response', {
      configurable: true,
      writable: true,
      value: Theirs,
    });
    try {
      expect(installLightResponse()).toBe(false);
      expect(globalThis.Response).toBe(Theirs);
    } finally {
      Object.defineProperty(globalThis, 'Response', saved);
    }
  });
});
