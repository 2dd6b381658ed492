import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { admin } from '../../../src/registry/server/admin.js';
import { fixture } from '../../support/env.js';
import { pushBlob, pushImage, randomImage, sha256, startRegistry, registryCli, type Client } from './support.js';

// Rules of a namespace (issue 23): tag immutability (Harbor's rules: repository and tag doublestar
// patterns, include or exclude) and storage quotas (each blob counted once per namespace), set
// with `kiln registry immutable|namespace set` while the registry runs, enforced by the registry
// service for every front end, and written to the audit log.

const run = promisify(execFile);
const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const pw = (name: string) => `password-${name}`;

const put = (c: Client, repo: string, ref: string, img: { manifest: Buffer; mediaType: string }) =>
  c.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: img.manifest, headers: { 'content-type': img.mediaType } });

test('an immutability rule refuses moving or deleting v1.0 (skopeo, HTTP, any role), allows v1.1 and the same manifest again, and goes only by a system administrator', async (t) => {
  const reg = await startRegistry(t, (c) => (c.auth.enabled = true));
  const ops = admin(reg.registry.metadata, 'test');
  await ops.addUser('root', pw('root'), true);
  await ops.addUser('max', pw('max'), false);
  await ops.grant('max', 'team', 'maintainer');
  const max = reg.client({ user: 'max', password: pw('max') });

  const added = await registryCli(reg, ['immutable', 'add', 'team', '--repos', '**', '--tags', 'v*']);
  assert.equal(added.code, 0, added.stderr);
  const id = added.stdout.trim();
  assert.match(id, /^\d+$/);
  const listed = await registryCli(reg, ['immutable', 'list', 'team']);
  assert.match(listed.stdout, new RegExp(`${id}\\s+team\\s+\\*\\*\\s+v\\*\\s+`));

  const [one, two] = [randomImage(), randomImage()];
  assert.equal((await pushImage(max, 'team/app', 'v1.0', one)).status, 201, 'the first push of an immutable tag is allowed');
  assert.equal((await put(max, 'team/app', 'v1.0', one)).status, 201, 'the same manifest again moves nothing');
  for (const b of [two.config, ...two.layers]) await pushBlob(max, 'team/app', b);
  const moved = await put(max, 'team/app', 'v1.0', two);
  assert.equal(moved.status, 403, 'a maintainer may promote, and still not move an immutable tag');
  assert.match(moved.text(), new RegExp(`DENIED.*tag v1.0 of team/app is immutable \\(rule ${id}: repositories matching \\\\"\\*\\*\\\\", tags matching \\\\"v\\*\\\\"\\)`));
  assert.equal((await put(max, 'team/app', 'v1.1', two)).status, 201, 'another tag is pushed');
  assert.equal((await put(max, 'team/app', 'latest', two)).status, 201, 'a tag the rule does not match moves freely');
  assert.equal((await put(max, 'team/app', 'latest', one)).status, 201);
  assert.equal((await max.req('DELETE', '/v2/team/app/manifests/v1.0')).status, 403, 'deleting the tag');
  const delManifest = await max.req('DELETE', `/v2/team/app/manifests/${one.digest}`);
  assert.equal(delManifest.status, 403, 'deleting the manifest would delete the tag');
  assert.match(delManifest.text(), /tag v1.0 of team\/app is immutable/);
  const still = await max.req('GET', '/v2/team/app/manifests/v1.0', { headers: { accept } });
  assert.equal(still.headers.get('docker-content-digest'), one.digest);

  // Through the management API: a maintainer cannot remove the rule, a system administrator can.
  const mgmt = (user: string, method: string, path: string, body?: unknown) =>
    fetch(reg.url + path, { method, headers: { authorization: 'Basic ' + Buffer.from(`${user}:${pw(user)}`).toString('base64'), 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  assert.equal((await mgmt('max', 'DELETE', `/kiln/v1/namespaces/team/immutable/${id}`)).status, 403);
  const rules = await (await mgmt('max', 'GET', '/kiln/v1/namespaces/team/immutable')).json() as { rules: { id: number; tags: string }[] };
  assert.deepEqual(rules.rules.map((r) => [r.id, r.tags]), [[Number(id), 'v*']]);
  assert.equal((await mgmt('root', 'DELETE', `/kiln/v1/namespaces/team/immutable/${id}`)).status, 200);
  assert.equal((await put(max, 'team/app', 'v1.0', two)).status, 201, 'without the rule the tag moves');

  // An exclusion: every tag but latest-* is immutable in repositories other than scratch/**.
  const ex = await mgmt('root', 'POST', '/kiln/v1/namespaces/team/immutable', { repos: 'scratch/**', excludeRepos: true, tags: 'latest-*', excludeTags: true });
  assert.equal(ex.status, 201, await ex.clone().text());
  assert.equal((await put(max, 'team/app', 'v1.0', one)).status, 403);
  assert.equal((await put(max, 'team/app', 'latest-main', one)).status, 201);
  assert.equal((await put(max, 'team/app', 'latest-main', two)).status, 201, 'latest-* is excluded');
  for (const b of [one.config, ...one.layers, two.config, ...two.layers]) await pushBlob(max, 'team/scratch/x', b);
  assert.equal((await put(max, 'team/scratch/x', 'v9', one)).status, 201);
  assert.equal((await put(max, 'team/scratch/x', 'v9', two)).status, 201, 'scratch/** is excluded');

  await reg.registry.audit.flush();
  const events = await reg.registry.metadata.listAudit({ namespace: 'team', limit: 100 });
  const actions = events.filter((e) => e.action.startsWith('immutable')).map((e) => `${e.actor} ${e.action} ${e.detail}`).reverse();
  assert.equal(actions.length, 3, actions.join('\n'));
  assert.match(actions[0]!, /immutable-add rule \d+: repositories matching "\*\*", tags matching "v\*"/);
  assert.match(actions[1]!, /^root immutable-rm rule/);
  assert.match(actions[2]!, /^root immutable-add .*repositories not matching "scratch\/\*\*", tags not matching "latest-\*"/);
});

test('skopeo: an immutable v1.0 is not overwritten by copying another image to it; v1.1 is copied', { skip: existsSync('/usr/bin/skopeo') ? undefined : 'needs skopeo' }, async (t) => {
  const reg = await startRegistry(t);
  assert.equal((await registryCli(reg, ['immutable', 'add', 'library', '--repos', 'busy*', '--tags', 'v1.0'])).code, 0);
  const host = reg.url.replace(/^http:\/\//, '');
  const copy = (to: string, from = `oci-archive:${fixture('busybox')}`) =>
    run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--format', 'v2s2', from, `docker://${host}/library/busybox:${to}`]).then(
      () => ({ ok: true, err: '' }),
      (e: { stderr?: string }) => ({ ok: false, err: e.stderr ?? '' }),
    );
  assert.deepEqual(await copy('v1.0'), { ok: true, err: '' });
  // The same image as OCI: another manifest digest for the same tag.
  const again = await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--format', 'oci', `oci-archive:${fixture('busybox')}`, `docker://${host}/library/busybox:v1.0`]).then(
    () => '',
    (e: { stderr?: string }) => e.stderr ?? 'failed',
  );
  assert.match(again, /denied|immutable/i, 'skopeo reports the refusal');
  assert.deepEqual(await copy('v1.1'), { ok: true, err: '' });
});

test('a quota refuses the push that would exceed it, with quota and usage in the message and nothing left behind; counted once per blob; accepted again after a tag is deleted and GC ran', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 0));
  const c = reg.client();
  const set = await registryCli(reg, ['namespace', 'set', 'team', '--quota', '10KiB']);
  assert.equal(set.code, 0, set.stderr);

  const a = randomImage({ layers: 2, layerSize: 3000 });
  assert.equal((await pushImage(c, 'team/a', 'v1', a)).status, 201);
  const used = () => reg.registry.metadata.namespaceUsage('team');
  const afterA = await used();
  assert.equal(afterA, 6000 + a.config.length);
  // The same blobs in another repository of the namespace count once.
  assert.equal((await pushImage(c, 'team/b', 'v1', a)).status, 201);
  assert.equal(await used(), afterA);
  const mounted = await c.req('POST', `/v2/team/c/blobs/uploads/?mount=${sha256(a.layers[0]!)}&from=team/a`);
  assert.equal(mounted.status, 201, 'a mount of a blob the namespace has is free');

  const big = randomImage({ layers: 2, layerSize: 3000 });
  await pushBlob(c, 'team/big', big.layers[0]!);
  const over = await c.req('POST', '/v2/team/big/blobs/uploads/');
  const url = new URL(over.headers.get('location')!, c.url);
  url.searchParams.set('digest', sha256(big.layers[1]!));
  const refused = await c.req('PUT', url.pathname + url.search, { body: big.layers[1]!, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(refused.status, 403);
  assert.match(refused.text(), /DENIED.*quota of namespace team exceeded: 9\.\d+ KiB used of 10 KiB, and this blob needs 2\.93 KiB more/);
  assert.equal((await c.req('HEAD', `/v2/team/big/blobs/${sha256(big.layers[1]!)}`)).status, 404, 'the refused blob is not there');
  assert.equal(await reg.registry.metadata.blob(sha256(big.layers[1]!)), undefined, 'nor recorded');
  assert.equal(await used(), afterA + 3000);
  // Another namespace has no quota.
  assert.equal((await pushImage(c, 'other/big', 'v1', big)).status, 201);

  const listed = await registryCli(reg, ['namespace', 'list']);
  assert.match(listed.stdout, /team\s+no\s+10 KiB\s+9\.\d+ KiB/);

  // Room again: team/a and team/b untagged and collected, the half-pushed big blob too (grace 0).
  for (const repo of ['team/a', 'team/b']) assert.equal((await c.req('DELETE', `/v2/${repo}/manifests/v1`)).status, 202);
  await reg.registry.gc();
  assert.ok((await used()) < afterA, `usage after GC: ${await used()}`);
  assert.equal((await pushImage(c, 'team/big', 'v1', big)).status, 201);

  const none = await registryCli(reg, ['namespace', 'set', 'team', '--quota', 'none']);
  assert.equal(none.code, 0, none.stderr);
  assert.equal((await reg.registry.metadata.getNamespace('team'))?.quotaBytes, undefined);
  await reg.registry.audit.flush();
  const quotaEvents = (await reg.registry.metadata.listAudit({ action: 'quota-set', limit: 10 })).map((e) => e.detail).reverse();
  assert.deepEqual(quotaEvents, ['quota 10 KiB', 'no quota']);
});

test('bad rules and quotas are refused, naming the field', async (t) => {
  const reg = await startRegistry(t);
  for (const [args, why] of [
    [['immutable', 'add', 'team', '--repos', '**', '--tags', 'v[1'], /tags: "v\[1" is not a valid pattern/],
    [['immutable', 'add', 'team', '--repos', '', '--tags', 'v*'], /repos: an empty pattern matches nothing/],
    [['immutable', 'add', 'Team', '--repos', '**', '--tags', 'v*'], /namespace "Team"/],
    [['immutable', 'rm', '42'], /no immutability rule 42/],
    [['immutable', 'rm', 'x'], /rule id "x"/],
    [['namespace', 'set', 'team', '--quota', 'lots'], /--quota: "lots" is not a size/],
    [['namespace', 'set', 'team'], /give --public, --private or --quota/],
  ] as const) {
    const r = await registryCli(reg, [...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, why, args.join(' '));
  }
  assert.deepEqual(await reg.registry.metadata.immutableRules(), [], 'nothing was added');
});
