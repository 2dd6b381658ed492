import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';

// Copies of trees and paths as cp -a makes them: owners, modes, times, links and xattrs kept;
// reflinks make them cheap where the file system supports them.

const run = promisify(execFile);

/** The contents of directory `from` copied into `to` (made if missing). */
export async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  await run('cp', ['-a', '--reflink=auto', `${from}/.`, to]);
}

/** A file or directory `from` copied to the new path `to`. */
export async function copyPath(from: string, to: string): Promise<void> {
  await run('cp', ['-a', '--reflink=auto', '--', from, to]);
}
