// What a build takes from its caller besides the Dockerfile, in docker buildx's syntax, read the same
// way for `kiln build`'s flags and `kiln bake`'s target fields: platforms, secrets, named contexts.
// Each parser names what it read in its errors (`where`: "--secret" or "target.app.secret[0]").

import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { formatPlatform, hostPlatform } from '../store/store.js';
import { isGitContext } from './gitcontext.js';
import { isHTTPContext } from './httpcontext.js';
import type { NamedContext } from './solver.js';

/**
 * Platforms (buildx: platformutil.Parse), normalised and without repeats; "local" is this machine's.
 * Empty for none given: the build is the host's, a plain image.
 */
export function parsePlatforms(parts: string[], where: string): Platform[] {
  const out: Platform[] = [];
  for (const part of parts.map((p) => p.trim()).filter((p) => p !== '')) {
    let p: Platform;
    try {
      p = part === 'local' ? hostPlatform() : parsePlatform(part);
    } catch (e) {
      throw new UsageError(`${where} ${part}: ${(e as Error).message}`);
    }
    if (p.os !== 'linux') throw new UsageError(`${where} ${part}: kiln builds linux images only`);
    // arm64's v8 is its default variant (containerd platforms.Normalize).
    if (p.architecture === 'arm64' && p.variant === 'v8') p = { os: p.os, architecture: p.architecture };
    if (!out.some((q) => formatPlatform(q) === formatPlatform(p))) out.push(p);
  }
  return out;
}

/** A secret as `id=ID,src=PATH`, `id=ID,env=VAR` or `id=ID` (the variable of that name) says it. */
export type SecretSpec = { id: string; src: string } | { id: string; env: string };

export function parseSecret(spec: string, where: string): SecretSpec {
  const kv = Object.fromEntries(spec.split(',').map((p) => [p.slice(0, p.indexOf('=') < 0 ? p.length : p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1)]));
  const id = kv.id;
  if (!id) throw new UsageError(`${where} ${spec}: needs id=`);
  for (const k of Object.keys(kv)) if (!['id', 'src', 'source', 'env', 'type'].includes(k)) throw new UsageError(`${where} ${spec}: unknown field "${k}" (id, src, env, type)`);
  if (kv.type !== undefined && kv.type !== 'file' && kv.type !== 'env') throw new UsageError(`${where} ${spec}: type must be file or env`);
  const src = kv.src ?? kv.source;
  if (src && kv.type !== 'env') return { id, src };
  return { id, env: kv.env ?? src ?? id };
}

/** The secrets' values, read now; a relative src is taken from `dir`. None of them is ever stored. */
export async function readSecrets(specs: SecretSpec[], where: string, dir = process.cwd()): Promise<Map<string, Buffer>> {
  const secrets = new Map<string, Buffer>();
  for (const s of specs) {
    if ('src' in s) {
      const path = resolve(dir, s.src);
      secrets.set(s.id, await readFile(path).catch(() => Promise.reject(new UsageError(`${where} id=${s.id}: cannot read ${s.src}`))));
    } else {
      const value = process.env[s.env];
      if (value === undefined) throw new UsageError(`${where} id=${s.id}: environment variable ${s.env} is not set (give src=PATH or env=VAR)`);
      secrets.set(s.id, Buffer.from(value));
    }
  }
  return secrets;
}

/** A named context as given: resolved to a NamedContext, or a git/http(s) URL to fetch at build time. */
export type NamedContextSpec = { name: string; context: NamedContext } | { name: string; url: string };

/**
 * buildx's --build-context / bake's `contexts` value: a directory (relative to `dir`), a git or
 * http(s) URL, docker-image://REF, or oci-layout://PATH[:TAG|@DIGEST]. Names are case-insensitive.
 */
export function parseNamedContext(name: string, value: string, where: string, dir = process.cwd()): NamedContextSpec {
  name = name.toLowerCase();
  if (name === '') throw new UsageError(`${where}: a named context needs a name`);
  if (value.startsWith('docker-image://')) return { name, context: { kind: 'image', ref: value.slice('docker-image://'.length) } };
  if (value.startsWith('oci-layout://')) {
    const m = /^(.*?)(?:@(sha256:[a-f0-9]{64})|:([\w][\w.-]*))?$/.exec(value.slice('oci-layout://'.length))!;
    return { name, context: { kind: 'oci-layout', path: resolve(dir, m[1]!), ref: m[2] ?? m[3] } };
  }
  if (isGitContext(value) || isHTTPContext(value)) return { name, url: value };
  if (/^[a-z]+:\/\//.test(value)) throw new UsageError(`${where} ${name}: unsupported source "${value}" (a directory, a git or http(s) URL, docker-image:// or oci-layout://)`);
  return { name, context: { kind: 'dir', path: resolve(dir, value) } };
}

/** A directory context must be one when the build starts. */
export async function checkNamedContext(spec: NamedContextSpec, shown: string, where: string): Promise<void> {
  if ('context' in spec && spec.context.kind === 'dir' && !(await stat(spec.context.path).catch(() => undefined))?.isDirectory()) {
    throw new UsageError(`${where} ${spec.name}: "${shown}" is not a directory`);
  }
}
