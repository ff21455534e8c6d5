/**
 * CGI variables from decoded params: the first step of every environ, shared by both codecs
 * (strings are materialised in TypeScript; see docs/codec.md).
 *
 * Rules:
 * - HTTP_CONTENT_LENGTH and HTTP_CONTENT_TYPE are dropped (PEP 3333: CONTENT_LENGTH and
 *   CONTENT_TYPE carry them), and so is HTTP_PROXY (httpoxy).
 * - A repeated HTTP_* variable is joined in arrival order with ", " (HTTP_COOKIE with "; "), so
 *   that two header names mapping to one variable never silently replace each other.
 * - Any other repeated variable: the last one wins (as php-fpm does).
 */

/** CGI variables: names and values are latin-1 strings. */
export type CgiVariables = Record<string, string>;

/** In-object property slots of an environ object (see {@link EnvironObject}). */
const SLOTS = 48;

/**
 * The object every environ is: a plain bag of own enumerable string keys with nothing
 * inherited (its prototype is an empty, frozen object with a null prototype, so `toString`,
 * `constructor` and `__proto__` are ordinary names), that V8 keeps in fast mode.
 *
 * Why a class: an object made by `Object.create(null)` is a hash table from the start, and an
 * object literal turns into one after 16 keys stored by computed name; both make building an
 * environ and reading it several times slower. V8 gives the instances of a constructor as many
 * in-object property slots as the constructor body has `this.x =` stores, so the constructor
 * below names {@link SLOTS} of them in a branch that never runs, and the first instances (made
 * at load time, see the end of this module) use them all, so that V8's slack tracking keeps
 * the room. An environ then stays in fast mode up to 2 × SLOTS keys. The private field holds
 * what makes the lazy `tsgi.*` values (lib/gateway/environ.ts); it is not a property.
 */
class EnvironObject {
  [name: string]: unknown;
  #source: unknown = undefined;

  constructor(presize: boolean) {
    /* `this.x = …` exactly as V8 counts it: no alias, no computed name. */
    // prettier-ignore
    if (presize) {
      this.s00 = 0; this.s01 = 0; this.s02 = 0; this.s03 = 0; this.s04 = 0; this.s05 = 0; this.s06 = 0; this.s07 = 0;
      this.s08 = 0; this.s09 = 0; this.s10 = 0; this.s11 = 0; this.s12 = 0; this.s13 = 0; this.s14 = 0; this.s15 = 0;
      this.s16 = 0; this.s17 = 0; this.s18 = 0; this.s19 = 0; this.s20 = 0; this.s21 = 0; this.s22 = 0; this.s23 = 0;
      this.s24 = 0; this.s25 = 0; this.s26 = 0; this.s27 = 0; this.s28 = 0; this.s29 = 0; this.s30 = 0; this.s31 = 0;
      this.s32 = 0; this.s33 = 0; this.s34 = 0; this.s35 = 0; this.s36 = 0; this.s37 = 0; this.s38 = 0; this.s39 = 0;
      this.s40 = 0; this.s41 = 0; this.s42 = 0; this.s43 = 0; this.s44 = 0; this.s45 = 0; this.s46 = 0;
    }
  }

  /** The value given to {@link setEnvironSource} for `o`, else undefined. */
  static source(o: object): unknown {
    return #source in o ? o.#source : undefined;
  }

  /** Whether `o` is an environ object. */
  static is(o: object): boolean {
    return #source in o;
  }

  static setSource(o: object, source: unknown): boolean {
    if (!(#source in o)) return false;
    o.#source = source;
    return true;
  }
}
Reflect.deleteProperty(EnvironObject.prototype, 'constructor');
Object.setPrototypeOf(EnvironObject.prototype, null);
Object.freeze(EnvironObject.prototype);

/** A new, empty environ object (see {@link EnvironObject}). */
export function environObject(): CgiVariables {
  return new EnvironObject(false) as unknown as CgiVariables;
}

/**
 * @internal The value attached to an environ object by {@link setEnvironSource}, looked up
 * along the prototype chain of `o` (for objects that inherit from an environ).
 */
export function environSource(o: object): unknown {
  for (let p: object | null = o; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    if (EnvironObject.is(p)) return EnvironObject.source(p);
  }
  return undefined;
}

/** @internal Attaches `source` to an environ object; false when `o` is not one. */
export function setEnvironSource(o: object, source: unknown): boolean {
  return EnvironObject.setSource(o, source);
}

/** Build the CGI variables of one request from a flat `[name, value, …]` array. */
export function cgiVariables(pairs: readonly string[]): CgiVariables {
  const vars = new EnvironObject(false) as unknown as CgiVariables;
  for (let i = 0; i + 1 < pairs.length; i += 2) addVariable(vars, pairs[i]!, pairs[i + 1]!);
  return vars;
}

/**
 * @internal Adds one param to CGI variables by the rules above (dropped names, joined HTTP_*
 * repeats, last one wins otherwise).
 */
export function addVariable(vars: CgiVariables, name: string, value: string): void {
  if (name.length > 5 && name.charCodeAt(0) === 72 /* H */ && name.startsWith('HTTP_')) {
    if (name === 'HTTP_CONTENT_LENGTH' || name === 'HTTP_CONTENT_TYPE' || name === 'HTTP_PROXY') {
      return;
    }
    const prev = vars[name];
    if (prev !== undefined) {
      vars[name] = prev + (name === 'HTTP_COOKIE' ? '; ' : ', ') + value;
      return;
    }
  }
  vars[name] = value;
}

/*
 * Slack tracking: V8 sizes the instances of a constructor after its first few instances (the
 * largest use wins). Instances that use every slot come first, so that the room stays.
 */
{
  const warm: CgiVariables[] = [];
  for (let i = 0; i < 10; i++) {
    const o = environObject();
    for (let k = 0; k < SLOTS; k++) o[`\0${k}`] = '';
    warm.push(o);
  }
}
