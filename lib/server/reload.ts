/**
 * `--reload`: watches the app's directory (not node_modules, not hidden folders) with chokidar
 * and calls back once per burst of changes to source files, naming the file that changed.
 *
 * chokidar re-watches a file replaced by rename (how vim, IDEs and `sed -i` save), which a
 * recursive fs.watch on Linux loses after the first such save; files and folders it may not
 * read are skipped without a word (ignorePermissionErrors).
 */
import { extname, relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from './log.js';

/** Files whose change reloads the workers. */
export const SOURCE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.js',
  '.mjs',
  '.cjs',
  '.json',
  '.ts',
  '.mts',
  '.cts',
  '.jsx',
  '.tsx',
  '.node',
]);

/** How long a burst of changes is gathered before one reload (ms). */
export const RELOAD_DEBOUNCE_MS = 200;

/** A running watch; close() stops it. */
export interface ReloadWatcher {
  close(): Promise<void>;
}

/**
 * Watches `dir`; after a burst of changes (no further change for `debounceMs`), calls
 * `reload` with what changed ("app.mjs changed", "app.mjs and 2 other files changed").
 * `also`: files (absolute paths) watched whatever their extension (an `app.fcgi` entry
 * file); `label`: what the log lines say is watching.
 */
export function watchForReload(
  dir: string,
  log: Logger,
  reload: (why: string) => void,
  debounceMs: number = RELOAD_DEBOUNCE_MS,
  also: ReadonlySet<string> = new Set(),
  label = '--reload',
): ReloadWatcher {
  const skipped = (path: string): boolean => {
    const rel = relative(dir, path);
    if (rel === '') return false;
    return rel.split(sep).some((p) => p === 'node_modules' || p.startsWith('.'));
  };
  const watcher: FSWatcher = watch(dir, {
    ignoreInitial: true,
    ignorePermissionErrors: true,
    /* a file deleted and created again within 100 ms (an atomic save) is one change */
    atomic: true,
    ignored: (path: string) => skipped(path),
  });
  let timer: NodeJS.Timeout | null = null;
  const changed = new Set<string>();
  const onChange = (path: string): void => {
    if (!SOURCE_EXTENSIONS.has(extname(path)) && !also.has(path)) return;
    changed.add(relative(dir, path));
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const [first] = changed;
      const others = changed.size - 1;
      changed.clear();
      reload(
        others === 0
          ? `${first} changed`
          : `${first} and ${others} other file${others === 1 ? '' : 's'} changed`,
      );
    }, debounceMs);
  };
  watcher.on('add', onChange);
  watcher.on('change', onChange);
  watcher.on('unlink', onChange);
  watcher.on('ready', () =>
    log.info(`${label}: watching ${dir} for changes`, { event: 'reload-watch', dir }),
  );
  watcher.on('error', (err) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return;
    log.warn(`${label}: watching ${dir}: ${(err as Error).message}`, { event: 'reload-watch' });
  });
  return {
    close: async () => {
      if (timer !== null) clearTimeout(timer);
      await watcher.close();
    },
  };
}
