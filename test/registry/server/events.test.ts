import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventBus, type RegistryEvent } from '../../../src/registry/server/events.js';
import { admin } from '../../../src/registry/server/admin.js';
import { pushBlob, pushImage, randomImage, startRegistry, waitFor } from './support.js';

// The registry service publishes what it changed (for webhooks and push-triggered replication):
// once committed and audited, never blocking or failing the request.

test('a listener that throws or rejects does not stop the others, and the publisher never sees it', async () => {
  const failures: string[] = [];
  const bus = eventBus((e) => failures.push(String((e as Error).message)));
  const seen: RegistryEvent[] = [];
  bus.subscribe(() => {
    throw new Error('sync boom');
  });
  bus.subscribe(async () => {
    throw new Error('async boom');
  });
  const stop = bus.subscribe((e) => void seen.push(e));
  bus.publish('alice', { type: 'delete', repository: 'team/app', digest: 'sha256:' + '0'.repeat(64), tags: ['v1'], tagOnly: true });
  assert.equal(seen.length, 0, 'listeners run after the publisher has returned');
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.actor, 'alice');
  assert.ok(Math.abs(seen[0]!.at - Date.now()) < 5000);
  assert.deepEqual(failures.sort(), ['async boom', 'sync boom']);
  stop();
  bus.publish('alice', { type: 'delete', repository: 'team/app', digest: 'sha256:' + '0'.repeat(64), tags: [], tagOnly: false });
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.length, 1, 'an unsubscribed listener hears nothing more');
});

test('push, pull, promote, delete and a refused blob over quota each publish one event with the actor and what changed', async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('max', 'password-max', false);
  await ops.grant('max', 'team', 'maintainer');
  await ops.setNamespace('quota', { quotaBytes: 1024 });
  await ops.grant('max', 'quota', 'maintainer');
  const seen: RegistryEvent[] = [];
  reg.registry.events.subscribe((e) => void seen.push(e));
  const max = reg.client({ user: 'max', password: 'password-max' });

  const img = randomImage();
  assert.equal((await pushImage(max, 'team/app', 'v1', img)).status, 201);
  await waitFor(async () => seen.some((e) => e.type === 'push'), 5000, 'push event');
  const push = seen.find((e) => e.type === 'push');
  assert.deepEqual(push && { ...push, at: 0 }, { type: 'push', actor: 'max', at: 0, repository: 'team/app', digest: img.digest, mediaType: img.mediaType, size: img.manifest.length, tags: ['v1'], subject: undefined });

  const pulled = await max.req('GET', '/v2/team/app/manifests/v1', { headers: { accept: img.mediaType } });
  assert.equal(pulled.status, 200);
  const head = await max.req('HEAD', '/v2/team/app/manifests/v1', { headers: { accept: img.mediaType } });
  assert.equal(head.status, 200);
  // /kiln/v1/ takes Basic credentials.
  const promoted = await fetch(`${reg.url}/kiln/v1/promote`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from('max:password-max').toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify({ source: 'team/app:v1', destination: 'team/app:stable' }),
  });
  assert.equal(promoted.status, 200, await promoted.text());
  assert.equal((await max.req('DELETE', '/v2/team/app/manifests/stable')).status, 202);
  assert.equal((await max.req('DELETE', `/v2/team/app/manifests/${img.digest}`)).status, 202);
  await assert.rejects(pushBlob(max, 'quota/app', Buffer.alloc(2048, 1)), /PUT upload: 403/);
  await waitFor(async () => seen.some((e) => e.type === 'quota-exceeded'), 5000, 'quota event');

  const kinds = seen.map((e) => e.type);
  assert.deepEqual(kinds.filter((k) => k === 'pull'), ['pull'], 'a GET publishes a pull, a HEAD does not');
  assert.deepEqual(seen.find((e) => e.type === 'pull') && { ...seen.find((e) => e.type === 'pull')!, at: 0 }, { type: 'pull', actor: 'max', at: 0, repository: 'team/app', digest: img.digest, mediaType: img.mediaType, reference: 'v1' });
  const promote = seen.find((e) => e.type === 'promote');
  assert.equal(promote?.type === 'promote' && `${promote.tag} ${promote.digest} ${promote.source}`, `stable ${img.digest} team/app@${img.digest}`);
  const deletes = seen.filter((e) => e.type === 'delete').map((e) => e.type === 'delete' && `${e.tagOnly} ${e.tags.join(',')}`);
  assert.deepEqual(deletes, ['true stable', 'false v1']);
  const quota = seen.find((e) => e.type === 'quota-exceeded');
  assert.equal(quota?.type === 'quota-exceeded' && `${quota.namespace} ${quota.quota} ${quota.size}`, 'quota 1024 2048');
});
