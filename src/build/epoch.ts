// SOURCE_DATE_EPOCH named in the Dockerfile: the global ARG's default, a number, "context", or the
// name of a source stage (FROM scratch, ARGs and one remote ADD) whose source dates the build. As
// BuildKit's dockerfile2llb/epoch.go resolves it; the CLI resolves what --build-arg and the
// environment give.

import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EnvList, ShellLex, type BuildPlan } from '../dockerfile/index.js';
import { isGitSource } from '../dockerfile/dispatch.js';
import { KilnError } from '../errors.js';
import { archiveKind, unpackArchive } from './copy.js';
import { cloneGitContext, parseGitSource } from './gitcontext.js';
import { newestMtime } from './httpcontext.js';

/** A named context as far as dating goes: the URL it was fetched from, if any. */
export interface DatedContext {
  kind: string;
  source?: string;
}

/** What the build was given from outside the Dockerfile. */
export interface GivenEpoch {
  sourceDateEpoch?: number;
  buildArgs: Record<string, string>;
}

/**
 * The epoch of a build whose Dockerfile names it, and the plan with its global SOURCE_DATE_EPOCH set
 * to the resolved value ("" removes it), as BuildKit's setBuildArgValue does
 * (dockerfile2llb/convert.go:304-310), so that `ARG SOURCE_DATE_EPOCH` in a stage sees the number.
 * A --build-arg or the environment wins (getBuildArgValue reads the build args first).
 */
export async function resolveDockerfileEpoch(plan: BuildPlan, given: GivenEpoch, namedContexts: ReadonlyMap<string, DatedContext>): Promise<{ epoch: number | undefined; plan: BuildPlan }> {
  if (given.sourceDateEpoch !== undefined || given.buildArgs.SOURCE_DATE_EPOCH !== undefined) return { epoch: given.sourceDateEpoch, plan };
  const v = plan.globalArgs.SOURCE_DATE_EPOCH;
  // "" and "context" (a local context, dated by nothing) leave it unset (epoch.go:35, :61-72).
  if (v === undefined || v === '' || v === 'context') return { epoch: undefined, plan };
  const epoch = /^-?\d+$/.test(v) ? Number(v) : await stageEpoch(plan, v, namedContexts);
  const value = epoch === undefined ? undefined : String(epoch);
  const globalArgList: [string, string][] = [];
  for (const [k, old] of plan.globalArgList) {
    if (k !== 'SOURCE_DATE_EPOCH') globalArgList.push([k, old]);
    else if (value !== undefined) globalArgList.push([k, value]);
  }
  return { epoch, plan: { ...plan, globalArgList, globalArgs: Object.fromEntries(globalArgList) } };
}

/** epoch.go:74-146: a named context of that name, else a source stage; anything else is invalid. */
async function stageEpoch(plan: BuildPlan, name: string, namedContexts: ReadonlyMap<string, DatedContext>): Promise<number | undefined> {
  // A named context fetched from a git or HTTP URL is dated as that source (epoch.go:74-87, then
  // :262-286); a local directory or an image carries no date, and the epoch stays unset.
  const named = namedContexts.get(name.toLowerCase());
  if (named) return named.source === undefined ? undefined : isGitSource(named.source) ? gitEpoch(named.source) : httpEpoch(named.source);
  const stage = plan.dockerfile.stages.find((s) => s.name === name.toLowerCase());
  if (!stage) throw new KilnError(`invalid SOURCE_DATE_EPOCH: ${name}`);
  const fail = (msg: string): never => {
    throw new KilnError(`${plan.dockerfile.file}:${stage.from.line}: ${msg}`);
  };
  const lex = new ShellLex({ escapeToken: plan.dockerfile.escapeChar });
  // The global args without SOURCE_DATE_EPOCH itself (epoch.go:95-99), then the stage's ARGs.
  const env = new EnvList(plan.globalArgList.filter(([k]) => k !== 'SOURCE_DATE_EPOCH'));
  const expand = (word: string): string => {
    try {
      return lex.processWord(word, env).result;
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  if (expand(stage.from.image) !== 'scratch') fail('SOURCE_DATE_EPOCH stage must use FROM scratch');
  let source: { url: string; keepGitDir: boolean } | undefined;
  for (const instr of stage.instructions) {
    if (instr.kind === 'arg') {
      for (const a of instr.args) {
        if (Object.hasOwn(plan.buildArgs, a.key)) env.set(a.key, plan.buildArgs[a.key]!);
        else if (a.value !== undefined) env.set(a.key, expand(a.value));
      }
    } else if (instr.kind === 'add') {
      if (source) fail('SOURCE_DATE_EPOCH stage must contain exactly one remote ADD');
      if (instr.heredocSources.length !== 0 || instr.sources.length !== 1) fail('SOURCE_DATE_EPOCH stage must contain exactly one remote ADD source');
      const url = expand(instr.sources[0]!);
      if (!/^https?:\/\//.test(url) && !isGitSource(url)) fail('SOURCE_DATE_EPOCH stage source must be a single HTTP(S) or Git ADD');
      source = { url, keepGitDir: instr.keepGitDir === true };
    } else fail(`SOURCE_DATE_EPOCH stage does not meet source-only requirements: unsupported ${instr.keyword.toLowerCase()} instruction`);
  }
  if (!source) return fail('SOURCE_DATE_EPOCH stage must contain exactly one remote ADD');
  return isGitSource(source.url) ? gitEpoch(source.url) : httpEpoch(source.url);
}

/** A git source is dated by its commit's committer time (epoch.go:327-336). */
async function gitEpoch(src: string): Promise<number> {
  const clone = await cloneGitContext(parseGitSource(src), { keepGitDir: true });
  try {
    const { stdout } = await promisify(execFile)('git', ['-C', clone.dir, 'log', '-1', '--format=%ct', 'HEAD']);
    return Number(stdout.trim());
  } finally {
    await clone.cleanup();
  }
}

/**
 * An HTTP source is dated by its Last-Modified, else, when it is an archive, by its newest regular
 * file (epoch.go:338-340, :265-286 and archiveMaxTimeFromRef); anything else leaves the epoch unset.
 */
async function httpEpoch(url: string): Promise<number | undefined> {
  const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => {
    throw new KilnError(`SOURCE_DATE_EPOCH source ${url}: ${e.message}`);
  });
  if (!res.ok || !res.body) throw new KilnError(`SOURCE_DATE_EPOCH source ${url}: HTTP ${res.status}`);
  const lm = Date.parse(res.headers.get('last-modified') ?? '');
  if (!Number.isNaN(lm)) {
    await res.body.cancel();
    return Math.floor(lm / 1000);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-epoch-'));
  try {
    const file = join(dir, 'download');
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(file));
    const kind = await archiveKind(file);
    if (!kind) return undefined;
    const unpacked = await unpackArchive(file, kind).catch(() => undefined);
    if (!unpacked) return undefined;
    try {
      return await newestMtime(unpacked.tree.root);
    } finally {
      await unpacked.cleanup();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
