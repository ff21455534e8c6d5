/**
 * `--user` / `--group`: tsgi binds its sockets first (ports below 1024, sockets in /run need
 * root), gives its unix sockets to the new owner, then drops to the user and group for good
 * (supplementary groups, gid, then uid: the order that leaves no way back), before any app
 * code runs.
 */
import process from 'node:process';
import { execFileSync } from 'node:child_process';

/** The numeric ids `--user` / `--group` name (-1: leave that one unchanged). */
export interface Ids {
  uid: number;
  gid: number;
  /** The user as given, for initgroups (null when only --group was given). */
  user: string | null;
}

/** Privileges cannot be changed as asked; the message is for the user. */
export class PrivilegeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrivilegeError';
  }
}

const NUMERIC = /^[0-9]{1,10}$/;

/** Asks `id` (the system's user database, NSS included) for a user's uid or primary gid. */
function idOf(flag: '-u' | '-g', user: string): number | null {
  try {
    const out = execFileSync('id', [flag, user], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const n = Number(out.trim());
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/** The numeric user id of a name. */
function uidOf(user: string): number {
  if (NUMERIC.test(user)) return Number(user);
  const uid = idOf('-u', user);
  if (uid === null) throw new PrivilegeError(`--user ${user}: no such user`);
  return uid;
}

/** The numeric group id of a name (root only: it is resolved by setting it as the egid). */
function gidOf(group: string): number {
  if (NUMERIC.test(group)) return Number(group);
  if (process.geteuid!() !== 0) {
    throw new PrivilegeError(`--group ${group}: changing the group needs root`);
  }
  const egid = process.getegid!();
  try {
    process.setegid!(group);
    return process.getegid!();
  } catch {
    throw new PrivilegeError(`--group ${group}: no such group`);
  } finally {
    process.setegid!(egid);
  }
}

/** The primary group of a user. */
function primaryGid(user: string): number {
  const gid = idOf('-g', user);
  if (gid === null) {
    throw new PrivilegeError(`--user ${user}: cannot find its group; name one with --group`);
  }
  return gid;
}

/**
 * Resolves `--user` / `--group` to numeric ids. Throws a PrivilegeError when they do not exist,
 * or when tsgi is not root and is asked to become someone else.
 */
export function resolveIds(user: string | null, group: string | null): Ids | null {
  if (user === null && group === null) return null;
  if (typeof process.geteuid !== 'function' || typeof process.setuid !== 'function') {
    throw new PrivilegeError('--user and --group are not supported on this platform');
  }
  const root = process.geteuid() === 0;
  if (!root) {
    const same =
      (user === null || uidOf(user) === process.geteuid()) &&
      (group === null || (NUMERIC.test(group) && Number(group) === process.getegid!()));
    if (same) return null;
    throw new PrivilegeError(
      `--user/--group need root to change identity (tsgi runs as uid ${process.geteuid()})`,
    );
  }
  const uid = user === null ? -1 : uidOf(user);
  const gid = group !== null ? gidOf(group) : user !== null ? primaryGid(user) : -1;
  return { uid, gid, user };
}

/** Becomes `ids` for good: supplementary groups, then gid, then uid. */
export function dropPrivileges(ids: Ids): void {
  try {
    const initgroups = (process as { initgroups?: (user: string, group: number) => void })
      .initgroups;
    if (ids.user !== null && ids.gid !== -1 && initgroups !== undefined) {
      initgroups.call(
        process,
        NUMERIC.test(ids.user) ? (Number(ids.user) as never) : ids.user,
        ids.gid,
      );
    } else if (ids.gid !== -1) process.setgroups!([ids.gid]);
    if (ids.gid !== -1) process.setgid!(ids.gid);
    if (ids.uid !== -1) process.setuid!(ids.uid);
  } catch (err) {
    throw new PrivilegeError(`cannot drop privileges: ${(err as Error).message}`);
  }
}
