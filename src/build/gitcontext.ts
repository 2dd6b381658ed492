// Git repositories as build contexts, as `docker build URL#ref:subdir` takes them: the repository is
// cloned with the system's git into a temporary directory, the ref checked out, and the subdirectory
// (default: the root) becomes the context. Like BuildKit without --keep-git-dir, the .git directory
// is not part of the context.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { KilnError, UsageError } from '../errors.js';

const run = promisify(execFile);

export interface GitContextSpec {
  url: string;
  /** Branch, tag or commit; undefined = the remote's default branch. */
  ref?: string;
  /** Directory inside the repository; "" = its root. */
  subdir: string;
}

export class GitContextFailed extends KilnError {}

/**
 * Whether a build context argument names a git repository rather than a local directory: docker's
 * rule (git://, git@…, github.com/…, an http(s) URL whose path ends in .git) plus file:// and ssh://
 * URLs, so that local and self-hosted repositories work too.
 */
export function isGitContext(arg: string): boolean {
  if (/^(git:\/\/|git@|ssh:\/\/|file:\/\/|github\.com\/)/.test(arg)) return true;
  return /^https?:\/\/[^#]+\.git(#.*)?$/.test(arg);
}

/** Split `URL#ref:subdir`. */
export function parseGitContext(arg: string): GitContextSpec {
  const hash = arg.indexOf('#');
  const url = hash < 0 ? arg : arg.slice(0, hash);
  const fragment = hash < 0 ? '' : arg.slice(hash + 1);
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  const clean = normalize(subdir || '.').replace(/^\/+/, '').replace(/\/+$/, '');
  if (clean === '..' || clean.startsWith('../')) throw new UsageError(`build context "${arg}": subdirectory "${subdir}" leaves the repository`);
  return { url: url.startsWith('github.com/') ? `https://${url}` : url, ...(ref ? { ref } : {}), subdir: clean === '.' ? '' : clean };
}

/** Clone the repository and return the context directory and the commit checked out; `cleanup` removes the clone. */
export async function cloneGitContext(spec: GitContextSpec, opts: { keepGitDir?: boolean } = {}): Promise<{ dir: string; commit: string; committed: number; cleanup: () => Promise<void> }> {
  const tmp = await mkdtemp(join(tmpdir(), 'kiln-git-context-'));
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  const checkout = join(tmp, 'repo');
  // Never wait for a password on a terminal: a context that needs credentials must fail clearly.
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes' };
  const git = async (args: string[]) => {
    try {
      await run('git', args, { env, maxBuffer: 16 << 20 });
    } catch (e) {
      const err = e as { stderr?: string; message: string; code?: string };
      if (err.code === 'ENOENT') throw new GitContextFailed('git is not installed: a git build context needs it');
      // git's first "fatal:" line says what went wrong; what follows is advice.
      const lines = (err.stderr || err.message).trim().split('\n').filter(Boolean);
      const why = (lines.find((l) => l.startsWith('fatal:')) ?? lines[0] ?? 'failed').replace(/^fatal:\s*/, '');
      throw new GitContextFailed(`build context ${spec.url}${spec.ref ? `#${spec.ref}` : ''}: ${why}`);
    }
  };
  try {
    // A commit id cannot be cloned by name: fetch everything and check it out. Branches and tags
    // are cloned shallow.
    const isCommit = spec.ref !== undefined && /^[0-9a-f]{7,64}$/.test(spec.ref);
    if (isCommit) {
      await git(['clone', '--quiet', '--no-checkout', '--', spec.url, checkout]);
      await git(['-C', checkout, 'checkout', '--quiet', '--detach', spec.ref!]);
    } else {
      const branch = spec.ref ? ['--branch', spec.ref] : [];
      await git(['clone', '--quiet', '--depth', '1', ...branch, '--', spec.url, checkout]).catch(async (e: Error) => {
        // git's dumb HTTP transport (a repository served as static files) cannot clone shallow.
        if (!/does not support shallow/.test(e.message)) throw e;
        await rm(checkout, { recursive: true, force: true });
        await git(['clone', '--quiet', ...branch, '--', spec.url, checkout]);
      });
    }
    const commit = (await run('git', ['-C', checkout, 'rev-parse', 'HEAD'], { env })).stdout.trim();
    // The committer time: what SOURCE_DATE_EPOCH=context dates a git context by (BuildKit dockerfile2llb/epoch.go:327-336).
    const committed = Number((await run('git', ['-C', checkout, 'log', '-1', '--format=%ct', 'HEAD'], { env })).stdout.trim());
    if (!opts.keepGitDir) await rm(join(checkout, '.git'), { recursive: true, force: true });
    const dir = join(checkout, spec.subdir);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new GitContextFailed(`build context ${spec.url}: "${spec.subdir}" is not a directory in the repository`);
    return { dir, commit, committed, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** ADD of a repository: where it is, which commit, and how it is copied. */
export interface GitSourceSpec extends GitContextSpec {
  /** A commit the ref must resolve to (?commit= or --checksum): full or a prefix. */
  commit?: string;
  keepGitDir?: boolean;
}

/**
 * Split an ADD source `URL#ref:subdir`, or BuildKit's query form `URL?ref=R&branch=B&tag=T&commit=C&subdir=D&keep-git-dir=true`
 * (dfgitutil.ParseGitRef). Unlike BuildKit, a branch= naming a tag is not refused.
 */
export function parseGitSource(src: string): GitSourceSpec {
  const q = src.indexOf('?');
  const hash = src.indexOf('#');
  if (q < 0 || (hash >= 0 && hash < q)) return parseGitContext(src);
  const end = hash < 0 ? src.length : hash;
  const params = new URLSearchParams(src.slice(q + 1, end));
  const spec: GitSourceSpec = parseGitContext(src.slice(0, q) + (hash < 0 ? '' : src.slice(hash)));
  const ref = params.get('ref') ?? params.get('branch') ?? params.get('tag') ?? undefined;
  const short = (r: string) => r.replace(/^refs\/(heads|tags)\//, '');
  if (ref !== undefined && spec.ref !== undefined && short(spec.ref) !== short(ref)) throw new GitContextFailed(`git source ${src}: ref ${ref} and fragment ${spec.ref} differ`);
  if (spec.ref !== undefined) spec.ref = short(spec.ref);
  else if (ref !== undefined) spec.ref = short(ref);
  const commit = params.get('commit');
  if (commit !== null) {
    spec.commit = commit;
    spec.ref ??= commit;
  }
  if (params.get('subdir') !== null) spec.subdir = parseGitContext(`x#:${params.get('subdir')}`).subdir;
  if (params.get('keep-git-dir') !== null) spec.keepGitDir = params.get('keep-git-dir') === 'true';
  return spec;
}
