// COPY --link as BuildKit's frontend writes it (dockerfile2llb/convert_copy.go: with `cfg.link &&
// cfg.chmod == ""`, `llb.Merge([d.state, llb.Scratch().File(copy)])`): the copy is an op on scratch,
// keyed and cached without its parent, and a merge lays its layer over the parent's. A new base
// then re-runs nothing of the copy: its layer is recorded once and reused under any base.

import type { CopyStep } from '../../dockerfile/index.js';
import type { Platform } from '../../oci/types.js';
import { chownNamesAccount } from '../../sandbox/user.js';
import { cacheKey } from '../cache.js';
import { scratchKey } from './image.js';
import type { Source, State } from './op.js';

/**
 * Whether a COPY is a copy on scratch merged over its parent. Not with --chmod (BuildKit's own
 * condition), and not with a --chown that names an account: kiln looks the name up in the parent's
 * /etc/passwd and /etc/group (resolveChown), as a plain COPY does, so the layer depends on the parent
 * and its key must too. (BuildKit looks it up in the copy's own destination, scratch under a merge,
 * where there is no /etc/passwd and every name silently becomes 0: solver/llbsolver/ops/user_linux.go
 * readUser. Putting the resolved uid:gid in the key instead would make each key read the parent's
 * files, extracting its layers on every cached build.)
 */
export function copyMerges(step: CopyStep): boolean {
  return step.link && !step.chmod && !(step.chown && chownNamesAccount(step.chown));
}

/**
 * The empty state a linked copy runs on: scratch for its platform, its key salted by
 * SOURCE_DATE_EPOCH (layers are written with their mtimes clamped to it) as a stage's base is. It is
 * the key of FROM scratch, so `FROM scratch` + `COPY --link` keys its copy as before.
 */
export function linkBase(platform: Platform, sourceDateEpoch: number | undefined): Source {
  let key = scratchKey(platform);
  if (sourceDateEpoch !== undefined) key = cacheKey(key, { sourceDateEpoch });
  return { kind: 'source', state: { key, layers: [], keys: [] } };
}

/** The state of states merged in order: their layers one after the other, keyed by their keys. */
export function mergeState(inputs: readonly [State, ...State[]]): State {
  const [first, ...rest] = inputs;
  return {
    key: cacheKey(first.key, { merge: rest.map((s) => s.key) }),
    layers: inputs.flatMap((s) => s.layers),
    keys: inputs.flatMap((s) => s.keys),
  };
}
