// Git sources: ADD <repository> as a source of the build graph (BuildKit's git source op). A
// repository is cloned once per build, however many steps add it, and keyed by the commit its ref
// resolved to (with its subdirectory and whether .git is kept), never by the clone's files, whose
// .git differs from one clone to the next. The clones are removed when the build ends.

import type { CopyStep } from '../../dockerfile/index.js';
import { cacheKey } from '../cache.js';
import { BuildStepError } from '../errors.js';
import { cloneGitContext, parseGitSource } from '../gitcontext.js';
import type { FetchedFiles, Source } from './op.js';

export interface GitSources {
  /** The source node of repository `src` as `step` adds it (--keep-git-dir, --checksum). */
  node(src: string, step: CopyStep, file: string): Source;
  /** Remove the build's clones. */
  cleanup(): Promise<void>;
}

export function createGitSources(): GitSources {
  const nodes = new Map<string, Source>();
  const clones: Promise<{ cleanup(): Promise<void> }>[] = [];

  function node(src: string, step: CopyStep, file: string): Source {
    const id = `${step.keepGitDir}\0${step.checksum ?? ''}\0${src}`;
    let n = nodes.get(id);
    if (!n) {
      n = {
        kind: 'source',
        inputs: [],
        async resolve() {
          const parsed = parseGitSource(src);
          const keepGitDir = step.keepGitDir || parsed.keepGitDir === true;
          const spec = { ...parsed, keepGitDir };
          const cloning = cloneGitContext(spec, { keepGitDir }).catch((e: Error) => {
            throw new BuildStepError(file, step.line, `ADD failed: ${/not found|couldn't find remote ref|did not match any/i.test(e.message) ? `repository does not contain ref ${spec.ref}: ` : ''}${e.message}`);
          });
          clones.push(cloning);
          const clone = await cloning;
          // --checksum (and ?commit=) name the commit the ref must be: in full or a prefix of it.
          for (const want of [step.checksum, spec.commit]) {
            if (want === undefined) continue;
            const refusal = !/^[0-9a-f]+$/.test(want)
              ? `invalid checksum ${JSON.stringify(want)}: expected hex commit hash`
              : !clone.commit.startsWith(want) ? `expected checksum to match ${want}, got ${clone.commit}` : undefined;
            if (refusal !== undefined) throw new BuildStepError(file, step.line, `ADD failed: ${refusal}`);
          }
          const keyPart = { git: spec.url, commit: clone.commit, subdir: spec.subdir, keepGitDir: spec.keepGitDir };
          const files: FetchedFiles = { keyPart, open: async () => ({ dir: clone.dir, name: '' }) };
          return { key: cacheKey('', keyPart), layers: [], keys: [], files };
        },
      };
      nodes.set(id, n);
    }
    return n;
  }

  async function cleanup(): Promise<void> {
    for (const c of clones) await (await c.catch(() => undefined))?.cleanup();
  }

  return { node, cleanup };
}
