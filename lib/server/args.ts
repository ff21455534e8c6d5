/**
 * Command-line words for usage errors: {@link parseOptions} checks every argument and says
 * what is wrong in one line of tsgi's own words (node:util's parseArgs messages are not), and
 * {@link nearest} finds the "did you mean ...?" among options, commands and config keys.
 */
import { parseArgs } from 'node:util';
import { distance } from 'fastest-levenshtein';

/**
 * The candidate nearest to `typed`, or null when none is near enough to be a likely typo
 * (at most a third of the word's letters wrong, at least one allowed; a candidate that starts
 * with what was typed, as an abbreviation, also counts).
 */
export function nearest(typed: string, candidates: Iterable<string>): string | null {
  const word = typed.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === null) return null;
  const limit = Math.max(1, Math.floor(Math.max(word.length, best.length) / 3));
  if (bestDistance <= limit) return best;
  if (word.length >= 3) {
    for (const c of candidates) if (c.toLowerCase().startsWith(word)) return c;
  }
  return null;
}

/** An option as parseArgs takes it. */
export interface OptionShape {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
}

/** A usage error in the arguments; the message is one line for the user. */
export class ArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgsError';
  }
}

/**
 * Parses `args` against `options`: values by option name (a `multiple` option gives a list)
 * and the positionals. Throws an ArgsError for an unknown option (`unknown(name)` words it),
 * a missing value, or a value given to a flag. `valueName(name)` names an option's value in
 * messages ("N", "ADDR").
 */
export function parseOptions(
  args: string[],
  options: Record<string, OptionShape>,
  unknown: (name: string) => string,
  valueName: (name: string) => string = () => 'VALUE',
): { values: Record<string, string | string[] | true>; positionals: string[] } {
  /* Not strict: every token is checked here, so each error is tsgi's own sentence. */
  const { tokens } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    tokens: true,
    options,
  });
  const values: Record<string, string | string[] | true> = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind === 'option-terminator') continue;
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (spec === undefined) throw new ArgsError(unknown(t.name));
    if (spec.type === 'boolean') {
      if (t.inlineValue === true) {
        throw new ArgsError(`${t.rawName} takes no value (given "${t.value}")`);
      }
      values[t.name] = true;
      continue;
    }
    const value = t.value;
    /* "--workers --reload": the next word is an option, not this one's value */
    if (value === undefined || (t.inlineValue !== true && value.startsWith('-') && value !== '-')) {
      throw new ArgsError(`${t.rawName} needs a value: ${t.rawName} ${valueName(t.name)}`);
    }
    if (spec.multiple === true) {
      const list = values[t.name];
      if (Array.isArray(list)) list.push(value);
      else values[t.name] = [value];
    } else {
      values[t.name] = value;
    }
  }
  return { values, positionals };
}
