// Where the framework test apps find their files: FRAMEWORK_FILES (set by
// test/adapters/frameworks.test.ts to a directory holding download.bin and public/), read per request.
import { join } from 'node:path';

export function filesDir() {
  const dir = process.env.FRAMEWORK_FILES;
  if (!dir) throw new Error('FRAMEWORK_FILES is not set');
  return dir;
}

export const downloadPath = () => join(filesDir(), 'download.bin');
export const publicDir = () => join(filesDir(), 'public');

/** A user "database" shared by the apps. */
export const USERS = { 1: { id: 1, name: 'Ada' }, 2: { id: 2, name: 'Grace' } };
