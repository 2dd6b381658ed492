// RUN as an exec op: a process in a sandbox on a snapshot of its parent, with its mounts; the
// snapshot's changes are its layer.

import { mkdtemp, readdir, rm, writeFile, chmod, chown } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { RunStep, SourceRef } from '../../dockerfile/index.js';
import { formatPlatform, samePlatform } from '../../oci/platform.js';
import type { Platform } from '../../oci/types.js';
import type { Mount } from '../../sandbox/executor.js';
import { copyPath } from '../../snapshot/cp.js';
import { pathInfo, type LayerRef } from '../../snapshot/snapshotter.js';
import { cacheKey } from '../cache.js';
import { cacheMountDir, emptyCacheMount, openCacheMount } from '../cachemount.js';
import { contextDigest } from '../copy.js';
import { BuildCancelled, BuildStepError } from '../errors.js';
import { forwardAgent } from '../ssh.js';
import { DirTree } from '../tree.js';
import type { RunFailure } from '../solver.js';
import { stepUser, type OpContext } from './op.js';

/** BuildKit's words (util/entitlements/entitlements.go:165, "security.insecure is not allowed"), and the flag that grants it. */
export const insecureRefused = 'RUN --security=insecure: entitlement security.insecure is not allowed (grant it with --allow security.insecure)';

type RunMount = RunStep['mounts'][number];

/** RUN's key and execution, with the build's cache mounts: one per build, shared by its RUNs. */
export interface Exec {
  key(step: RunStep, parent: string, platform: Platform): Promise<string>;
  run(step: RunStep, layers: LayerRef[], vertex: number): Promise<LayerRef | undefined>;
  /** RUN --mount=type=cache directories the build used (cached steps' too): cache id → directory in the store. */
  readonly cacheMounts: Map<string, string>;
}

export function createExec(ctx: OpContext): Exec {
  const { req, file, snapshotter } = ctx;
  const cacheMounts = new Map<string, string>();
  const restoring = new Map<string, Promise<void>>();
  /** Cache mounts this build started empty (--no-cache). */
  const emptied = new Set<string>();

  /** The step's cache key: parent key + definition, with what its bind mounts read. */
  async function key(step: RunStep, parent: string, platform: Platform): Promise<string> {
    // A RUN's result depends on the platform it runs for (BuildKit's exec op carries its platform
    // in its definition), also where its inputs do not show it (a directory context as base). The
    // host's adds nothing, so keys of host builds stay what they were.
    const foreign = samePlatform(platform, ctx.host) ? {} : { platform: formatPlatform(platform) };
    const mounts = step.mounts.map((m) => ({ ...m, from: m.from ? sourceKeySync(m.from) : undefined }));
    const fromKeys: string[] = [];
    for (const m of step.mounts) if (m.from && m.type === 'bind') fromKeys.push(await bindSourceKey(m.from, m.source, step.line));
    const ctxKeys = await Promise.all(step.mounts.filter((m) => m.type === 'bind' && !m.from).map((m) => contextMountKey(m.source)));
    const k = cacheKey(parent, { run: step.args, env: step.env, user: step.user, workdir: step.workdir, network: step.network, mounts, fromKeys, ctx: ctxKeys, inline: step.inlineFiles, net: req.network, ...(step.hostname ? { hostname: step.hostname } : {}), ...(req.shmSize ? { shm: req.shmSize } : {}), ...(req.ulimits ? { ulimits: req.ulimits } : {}), ...foreign, ...(step.security === 'insecure' ? { security: step.security } : {}) });
    for (const m of step.mounts) if (m.type === 'cache') noteCacheMount(m);
    return k;
  }

  function sourceKeySync(src: SourceRef): string {
    return 'stage' in src ? `stage:${src.stage}` : `image:${src.image}`;
  }

  /**
   * A bind mount of a stage or an image: the key of the whole source, or, when it selects a path in
   * it, that path's content. BuildKit's exec op hashes a mount's selected path (llbsolver/ops/exec.go,
   * ComputeDigestFunc over the selector), so the RUN stays cached while that directory reads the same,
   * whatever else changed in the stage (testMountRWCache).
   */
  async function bindSourceKey(from: SourceRef, source: string, line: number): Promise<string> {
    const rel = source.split('/').filter((p) => p !== '' && p !== '.').join('/');
    if (rel === '') return ctx.sourceKey(from, line);
    const v = await snapshotter.view(await ctx.sourceLayers(from, line), 'bind-key');
    try {
      const tree = new DirTree(v.path);
      const f = await tree.stat(rel);
      if (!f) return `missing\0${await ctx.sourceKey(from, line)}`;
      return contextDigest(tree, [{ file: f, target: '/' }], [], req.signal);
    } finally {
      await v.release();
    }
  }

  async function contextMountKey(source: string): Promise<string> {
    const rel = source.replace(/^\/+/, '');
    const f = await req.context.stat(rel);
    if (!f) return 'missing';
    return contextDigest(req.context, [{ file: f, target: '/' }], [], req.signal);
  }

  /** Where a cache mount lives in the store; noted for --cache-to mounts=true (cached steps' too). */
  function noteCacheMount(m: RunMount): { cacheId: string; dir: string } {
    const cacheId = m.id ?? m.target;
    const dir = cacheMountDir(req.store.root, cacheId);
    cacheMounts.set(cacheId, dir);
    return { cacheId, dir };
  }

  /** --cache-from with saved cache mounts: fill a cache directory that is empty, once per build. */
  function restoreCacheMount(cacheId: string, dir: string): Promise<void> {
    let p = restoring.get(cacheId);
    if (!p) {
      p = (async () => {
        const saved = ctx.cache.mountSource(cacheId);
        if (!saved || (await readdir(dir)).length > 0) return;
        await saved.restore(req.store, dir);
      })();
      restoring.set(cacheId, p);
    }
    return p;
  }

  async function run(step: RunStep, layers: LayerRef[], id: number): Promise<LayerRef | undefined> {
    const runId = `kiln-${process.pid}-${randomBytes(6).toString('hex')}`;
    if (step.security === 'insecure' && !req.allowInsecure) throw new BuildStepError(file, step.line, insecureRefused);
    const snap = await snapshotter.prepare(layers, runId);
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const user = await stepUser(ctx, snap.rootfs, step.user, step.line);
      const mounts: Mount[] = [];
      const secretEnv: string[] = [];
      for (const m of step.mounts) mounts.push(...(await runMount(m, step, cleanups, secretEnv)));
      if (step.inlineFiles.length) {
        const dir = await mkdtemp(join(req.store.root, 'tmp-inline-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        for (const [i, f] of step.inlineFiles.entries()) {
          const p = join(dir, String(i));
          await writeFile(p, f.content);
          await chmod(p, f.mode);
          mounts.push({ destination: f.path, type: 'bind', source: p, options: ['rbind', 'ro'] });
        }
      }
      const tail: string[] = [];
      const sink = (stream: 'stdout' | 'stderr') =>
        new Writable({
          write(chunk: Buffer, _e, cb) {
            const text = chunk.toString();
            req.progress.log(id, stream, text);
            tail.push(...text.split('\n'));
            if (tail.length > 40) tail.splice(0, tail.length - 40);
            cb();
          },
        });
      const network = step.network !== 'default' ? step.network : req.network;
      const sandbox: RunFailure['sandbox'] = {
        id: runId,
        rootfs: snap.rootfs,
        process: { args: step.args, env: [...step.env, ...step.proxyEnv, ...secretEnv], cwd: step.workdir || '/', user },
        network,
        hostname: step.hostname ?? runId.slice(0, 12),
        mounts,
        ...(req.shmSize ? { shmSize: req.shmSize } : {}),
        ...(req.ulimits ? { rlimits: req.ulimits } : {}),
        ...(step.security === 'insecure' ? { security: step.security } : {}),
      };
      const result = await req.executor.run({ ...sandbox, stdout: sink('stdout'), stderr: sink('stderr'), signal: req.signal });
      if (result.exitCode !== 0) {
        if (req.onRunFailure && !req.signal.aborted) await req.onRunFailure({ file, line: step.line, exitCode: result.exitCode, sandbox });
        const out = tail.filter((l) => l.length).slice(-10).join('\n');
        // BuildKit's wording: the argv joined by spaces, quoted (`process "/bin/sh -c x" did not complete successfully`).
        throw new BuildStepError(file, step.line, `RUN failed: process ${JSON.stringify(step.args.join(' '))} did not complete successfully: exit code: ${result.exitCode}${out ? '\n' + out : ''}`);
      }
      const exclude = [...result.createdMountpoints];
      return await ctx.layerWrites.run(() => snap.commit({ exclude, sourceDateEpoch: req.sourceDateEpoch }));
    } catch (e) {
      if (req.signal.aborted) throw new BuildCancelled('build cancelled');
      throw e;
    } finally {
      await snap.release();
      for (const c of cleanups.reverse()) await c().catch(() => {});
    }
  }

  /** RUN --mount: cache dirs live in the store, secrets in a private temp dir, binds are read-only views. */
  async function runMount(m: RunMount, step: RunStep, cleanups: (() => Promise<void>)[], secretEnv: string[]): Promise<Mount[]> {
    const fail = (msg: string): never => {
      throw new BuildStepError(file, step.line, msg);
    };
    switch (m.type) {
      case 'tmpfs':
        return [{ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(m.sizeLimit ? [`size=${m.sizeLimit}`] : [])] }];
      case 'cache': {
        let seed: string | undefined;
        if (m.from) {
          // from= and source=: a new cache starts with that directory of a stage or an image.
          const v = await snapshotter.view(await ctx.sourceLayers(m.from, step.line), 'cache-from');
          cleanups.push(() => v.release());
          seed = join(v.path, m.source);
          if ((await pathInfo(seed))?.type !== 'directory') fail(`cache mount source "${m.source}" is not a directory in ${ctx.describeSource(m.from)}`);
        }
        const { cacheId, dir } = noteCacheMount(m);
        // --no-cache starts each cache mount empty, once per build (BuildKit testCacheMountModeNoCache).
        if (req.noCache && !emptied.has(cacheId)) {
          emptied.add(cacheId);
          await emptyCacheMount(req.store.root, cacheId);
        }
        const opened = await openCacheMount(req.store.root, { id: cacheId, sharing: m.sharing ?? 'shared', uid: m.uid, gid: m.gid, mode: m.mode }, seed);
        cleanups.push(opened.release);
        // --cache-from with saved cache mounts fills the shared directory when it is still empty.
        await restoreCacheMount(cacheId, dir);
        let source = opened.dir;
        if (!m.from && m.source.split('/').some((c) => c !== '' && c !== '.')) {
          // source= without from= is a directory inside the cache (BuildKit's SourcePath on the cache
          // mount), its links followed without leaving the cache: a link to /etc names the cache's etc.
          const rel = await new DirTree(opened.dir).resolve(m.source);
          const inside = rel === undefined ? undefined : join(opened.dir, rel);
          if (!inside || (await pathInfo(inside))?.type !== 'directory') fail(`cache mount source "${m.source}" is not a directory in cache "${cacheId}"`);
          source = inside!;
        }
        return [{ destination: m.target, type: 'bind', source, options: ['rbind', m.readOnly ? 'ro' : 'rw'] }];
      }
      case 'secret': {
        const value = req.secrets.get(m.id ?? '');
        if (!value) {
          if (m.required) fail(`secret "${m.id}" is required but was not given (use --secret id=${m.id},src=FILE)`);
          return [];
        }
        // env=: the value is in the process environment only while the step runs, never in the config.
        if (m.env) secretEnv.push(`${m.env}=${value.toString('utf8')}`);
        if (!m.target) return [];
        // Secrets go to memory-backed /dev/shm, never into the store, and are removed after the step.
        const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'kiln-secret-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        const p = join(dir, 'secret');
        await writeFile(p, value, { mode: m.mode ?? 0o400 });
        await chmod(p, m.mode ?? 0o400);
        // uid= and gid= own the file for a step that runs as another user (BuildKit: default 0:0).
        await chown(p, m.uid ?? 0, m.gid ?? 0);
        return [{ destination: m.target, type: 'bind', source: p, options: ['rbind', 'ro'] }];
      }
      case 'ssh': {
        const agent = req.ssh?.get(m.id ?? 'default');
        if (!agent) {
          // BuildKit solver/llbsolver/mounts/mount.go:163-169: optional and not given, no socket.
          if (m.required) fail(`no SSH key ${JSON.stringify(m.id)} forwarded from the client (use --ssh ${m.id}[=SOCKET|KEY])`);
          return [];
        }
        // BuildKit client/llb/exec.go:710-714, convert_ssh.go:36-49: mode 0600, owner 0:0 by default.
        const socket = await forwardAgent(agent, { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 });
        cleanups.push(socket.close);
        return [{ destination: m.target, type: 'bind', source: socket.path, options: ['rbind'] }];
      }
      case 'bind': {
        let root: string;
        if (!m.from) root = req.context.root;
        else if (m.readOnly) {
          const v = await snapshotter.view(await ctx.sourceLayers(m.from, step.line), 'bind');
          cleanups.push(() => v.release());
          root = v.path;
        } else {
          // rw: the step writes into a snapshot of its own, thrown away afterwards.
          const s = await snapshotter.prepare(await ctx.sourceLayers(m.from, step.line), 'bind-rw');
          cleanups.push(() => s.release());
          root = s.rootfs;
        }
        let source = join(root, m.source);
        if (!(await pathInfo(source))) fail(`bind mount source "${m.source}" not found`);
        if (!m.readOnly && !m.from) {
          // rw from the context: a scratch copy, so the step's writes never reach the user's files.
          const scratch = await mkdtemp(join(tmpdir(), 'kiln-bind-'));
          cleanups.push(() => rm(scratch, { recursive: true, force: true }));
          await copyPath(source, join(scratch, 'src'));
          source = join(scratch, 'src');
        }
        return [{ destination: m.target, type: 'bind', source, options: ['rbind', m.readOnly ? 'ro' : 'rw'] }];
      }
      default:
        return fail(`RUN --mount=type=${m.type} is not supported`);
    }
  }

  return { key, run, cacheMounts };
}
