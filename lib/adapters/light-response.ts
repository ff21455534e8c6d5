/**
 * A Response that costs what its parts cost: `new Response('Hello', { headers })` keeps the
 * status, the headers (checked and normalised as `Headers` would, as a small list) and the
 * body (a string, or a copy of the bytes), and makes the real Response — a `Headers`, a body
 * ReadableStream, most of a Response's cost — only when something reads more of it than
 * `status`, `statusText` and `ok`. fromFetch() sends such a response straight from its parts:
 * no stream is made or read.
 *
 * It is what a handler's `new Response(…)` makes once installLightResponse() replaced the
 * global `Response` (fromFetch() does, unless told not to; a global the process replaced
 * before is left alone). `instanceof Response` holds for light and real responses alike,
 * Response.json/redirect/error are the real ones, and Response.prototype is not touched. What
 * the real constructor would throw on (a status out of range, a bad header name or value, a
 * body with a null-body status) is thrown at construction, by the real constructor: anything
 * but a plain init with a string, bytes or no body is a real Response from the start.
 */
import { FIELD_VALUE_BAD, isToken } from '../http/grammar.js';

/**
 * How the global `Response` was defined when this module was loaded: Node defines it as a
 * getter that loads undici on first use (and then becomes a plain value). It is not read
 * here, which would load undici at start-up for every app.
 */
const GLOBAL_AT_LOAD = Object.getOwnPropertyDescriptor(globalThis, 'Response');

/** What a light response is made of; `real` once made. */
export interface ResponseParts {
  status: number;
  statusText: string;
  /** Header names lower-cased, sorted, repeats combined (Set-Cookie kept apart), as Headers. */
  headers: [string, string][];
  /** The body: a string (sent as UTF-8), bytes (a copy), or null. */
  body: string | Uint8Array | null;
  real: Response | null;
}

const PARTS = Symbol('tsgi.response');
type Light = Response & { [PARTS]: ResponseParts };

/* Statuses the Fetch standard gives no body; a body with one makes the constructor throw. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TEXT_TYPE = 'text/plain;charset=UTF-8';

/**
 * The headers of `init` as Headers would keep them, or null when only a real Headers can say
 * (a value it would trim or refuse, a name it would refuse, a value that is not a string).
 */
function headerList(init: unknown): [string, string][] | null {
  const list: [string, string][] = [];
  const add = (name: unknown, value: unknown): boolean => {
    if (typeof name !== 'string' || typeof value !== 'string' || !isToken(name)) return false;
    if (FIELD_VALUE_BAD.test(value)) return false;
    const n = value.length;
    if (n !== 0) {
      const a = value.charCodeAt(0);
      const z = value.charCodeAt(n - 1);
      if (a === 32 || a === 9 || z === 32 || z === 9) return false;
    }
    list.push([name.toLowerCase(), value]);
    return true;
  };
  if (init === undefined || init === null) return list;
  if (init instanceof Headers) {
    /* iteration yields lower-case names, sorted, Set-Cookie values apart */
    for (const [name, value] of init) list.push([name, value]);
    return list;
  }
  if (Array.isArray(init)) {
    for (const pair of init as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2 || !add(pair[0], pair[1])) return null;
    }
  } else if (typeof init === 'object') {
    const proto = Object.getPrototypeOf(init) as unknown;
    if (proto !== Object.prototype && proto !== null) return null;
    const record = init as Record<string, unknown>;
    for (const name in record) if (!add(name, record[name])) return null;
  } else {
    return null;
  }
  if (list.length > 1) {
    list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    /* repeats combined as Headers combines them; Set-Cookie values stay apart */
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      if (list[i]![0] === prev[0] && prev[0] !== 'set-cookie') {
        prev[1] += ', ' + list[i]![1];
        list.splice(i, 1);
        i--;
      }
    }
  }
  return list;
}

/** The parts of `body, init` when a light response can hold them, else null. */
function lightParts(body: unknown, init: unknown): ResponseParts | null {
  let kept: string | Uint8Array | null;
  if (body === undefined || body === null) kept = null;
  else if (typeof body === 'string') kept = body;
  else if (body instanceof Uint8Array) kept = new Uint8Array(body);
  else return null;
  let status = 200;
  let statusText = '';
  let headers: [string, string][] | null = [];
  if (init !== undefined && init !== null) {
    if (typeof init !== 'object') return null;
    const proto = Object.getPrototypeOf(init) as unknown;
    if (proto !== Object.prototype && proto !== null) return null;
    const i = init as ResponseInit;
    if (i.status !== undefined) {
      if (!Number.isInteger(i.status) || i.status < 200 || i.status > 599) return null;
      status = i.status;
    }
    if (i.statusText !== undefined) {
      if (typeof i.statusText !== 'string' || !REASON_PHRASE.test(i.statusText)) return null;
      statusText = i.statusText;
    }
    headers = headerList(i.headers);
    if (headers === null) return null;
  }
  if (kept !== null && NULL_BODY.has(status)) return null;
  if (typeof kept === 'string' && !headers.some((h) => h[0] === 'content-type')) {
    headers.push(['content-type', TEXT_TYPE]);
    headers.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
  return { status, statusText, headers, body: kept, real: null };
}

/** The real Response of a light one, made on first need. */
function realResponse(self: Light): Response {
  const parts = self[PARTS];
  if (parts.real === null) {
    parts.real = new classes!.native(parts.body as ConstructorParameters<typeof Response>[0], {
      status: parts.status,
      statusText: parts.statusText,
      headers: parts.headers,
    });
  }
  return parts.real;
}

/**
 * The Response class installLightResponse() puts in the global scope: a light response when
 * the arguments allow one, else the real Response itself (a constructor may return another
 * object).
 */
function makeLight(NativeResponse: typeof Response): typeof Response {
  const Light = function Response(this: Light, body?: unknown, init?: unknown) {
    if (new.target === undefined) {
      throw new TypeError("Failed to construct 'Response': Please use the 'new' operator");
    }
    const parts = lightParts(body, init);
    if (parts === null || (new.target as unknown) !== Light) {
      /* a subclass, or arguments only the real constructor can judge */
      return Reflect.construct(NativeResponse, [body, init], new.target) as Response;
    }
    this[PARTS] = parts;
    return this;
  } as unknown as typeof Response;

  Object.setPrototypeOf(Light, NativeResponse);
  Light.prototype = (() => {
    const proto = Object.create(NativeResponse.prototype) as Record<PropertyKey, unknown>;
    for (const key of Reflect.ownKeys(NativeResponse.prototype)) {
      if (key === 'constructor') continue;
      const d = Object.getOwnPropertyDescriptor(NativeResponse.prototype, key)!;
      if (typeof d.value === 'function') {
        const method = d.value as (...args: unknown[]) => unknown;
        Object.defineProperty(proto, key, {
          configurable: true,
          writable: true,
          value: function (this: Light, ...args: unknown[]) {
            return method.apply(PARTS in this ? realResponse(this) : this, args);
          },
        });
      } else if (d.get !== undefined) {
        const get = d.get;
        Object.defineProperty(proto, key, {
          configurable: true,
          get(this: Light) {
            return get.call(PARTS in this ? realResponse(this) : this);
          },
        });
      }
    }
    const own = (
      key: 'status' | 'statusText' | 'ok',
      read: (p: ResponseParts) => unknown,
    ): void => {
      const real = Object.getOwnPropertyDescriptor(NativeResponse.prototype, key)!.get!;
      Object.defineProperty(proto, key, {
        configurable: true,
        get(this: Light) {
          if (!(PARTS in this)) return real.call(this);
          const parts = this[PARTS];
          return parts.real !== null ? real.call(parts.real) : read(parts);
        },
      });
    };
    own('status', (p) => p.status);
    own('statusText', (p) => p.statusText);
    own('ok', (p) => p.status >= 200 && p.status <= 299);
    Object.defineProperty(proto, 'constructor', {
      configurable: true,
      writable: true,
      value: Light,
    });
    return proto as unknown as Response;
  })();
  /* `x instanceof Response` holds for every Response, light or real */
  Object.defineProperty(Light, Symbol.hasInstance, {
    configurable: true,
    value: (v: unknown) => v instanceof NativeResponse,
  });
  return Light;
}

let classes: { light: typeof Response; native: typeof Response } | null = null;

/** The light Response class, made on first use over the global Response of that moment. */
export function lightResponseClass(): typeof Response {
  if (classes === null) {
    const native = globalThis.Response;
    classes = { light: makeLight(native), native };
  }
  return classes.light;
}

/**
 * The parts of `response` when it is a light response nothing made real yet (the sender can
 * use them as they are), else null.
 */
export function responseParts(response: unknown): ResponseParts | null {
  if (typeof response !== 'object' || response === null || !(PARTS in response)) return null;
  const parts = (response as Light)[PARTS];
  return parts.real === null ? parts : null;
}

/**
 * Whether the global Response is still the process's own: Node's lazy getter not used yet,
 * or a class that extends nothing (a replacement such as @hono/node-server's extends it).
 */
function globalIsNative(now: PropertyDescriptor | undefined): boolean {
  if (now === undefined || GLOBAL_AT_LOAD === undefined) return false;
  if (now.get !== undefined) return now.get === GLOBAL_AT_LOAD.get;
  const value = now.value as unknown;
  if (typeof value !== 'function') return false;
  const proto = (value as { prototype?: unknown }).prototype;
  return (
    typeof proto === 'object' && proto !== null && Object.getPrototypeOf(proto) === Object.prototype
  );
}

/**
 * Makes the global `Response` the light one, unless another library replaced it (that
 * replacement is left in place). Returns whether light responses are in use.
 */
export function installLightResponse(): boolean {
  const now = Object.getOwnPropertyDescriptor(globalThis, 'Response');
  if (classes !== null && now?.value === classes.light) return true;
  if (!globalIsNative(now)) return false;
  const light = lightResponseClass();
  Object.defineProperty(globalThis, 'Response', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: light,
  });
  return true;
}
