// WORKDIR as a file op (BuildKit's mkdir): the directory made, owned by the step's user.

import { randomBytes } from 'node:crypto';
import type { WorkdirStep } from '../../dockerfile/index.js';
import { ensureWorkingDir } from '../../sandbox/mountpoints.js';
import type { LayerRef } from '../../snapshot/snapshotter.js';
import { cacheKey } from '../cache.js';
import { stepUser, type OpContext } from './op.js';

export function workdirKey(step: WorkdirStep, parent: string): string {
  return cacheKey(parent, { workdir: step.path, user: step.user });
}

export async function runWorkdir(ctx: OpContext, step: WorkdirStep, layers: LayerRef[]): Promise<LayerRef | undefined> {
  const snap = await ctx.snapshotter.prepare(layers, `workdir-${randomBytes(4).toString('hex')}`);
  try {
    const user = await stepUser(ctx, snap.rootfs, step.user, step.line);
    await ensureWorkingDir(snap.rootfs, step.path, user, []);
    return await ctx.layerWrites.run(() => snap.commit({ exclude: [], sourceDateEpoch: ctx.req.sourceDateEpoch }));
  } finally {
    await snap.release();
  }
}
