import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tagsToRemove } from '../../../src/registry/server/retention.js';
import type { RetentionRule, TagRecord } from '../../../src/registry/server/metadata/metadata.js';
import { pushImage, randomImage, startRegistry, registryCli, waitFor } from './support.js';

// Tag retention (issue 23, Harbor's rules): which tags of a namespace to keep; the rest are
// removed, untagged manifests past their days too, and garbage collection takes what they held,
// referrers included. A dry run lists exactly what a real run removes.

const DAY = 86_400_000;
const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

const rule = (id: number, kind: RetentionRule['kind'], value: number, tags = '**'): RetentionRule => ({ id, namespace: 'team', repos: '**', tags, kind, value, createdBy: 't', createdAt: 0 });

test('the rules decide as Harbor\'s: a tag goes when a rule covers it and none keeps it; never loses to always; tags no rule covers stay', () => {
  const now = 100 * DAY;
  const tags: TagRecord[] = [
    { tag: 'v1', digest: 'd1', pushedAt: now - 50 * DAY, pulledAt: now - DAY },
    { tag: 'v2', digest: 'd2', pushedAt: now - 40 * DAY },
    { tag: 'v3', digest: 'd3', pushedAt: now - 30 * DAY, pulledAt: now - 20 * DAY },
    { tag: 'v4', digest: 'd4', pushedAt: now - 2 * DAY },
    { tag: 'dev-1', digest: 'd5', pushedAt: now - 90 * DAY },
    { tag: 'stable', digest: 'd1', pushedAt: now - 60 * DAY },
  ];
  const removed = (rules: RetentionRule[]) => tagsToRemove(rules, tags, now).map((x) => x.tag.tag).sort();
  assert.deepEqual(removed([rule(1, 'latest-pushed', 2, 'v*')]), ['v1', 'v2'], 'the two newest v* stay; dev-1 and stable are not covered');
  assert.deepEqual(removed([rule(1, 'latest-pushed', 2, 'v*'), rule(2, 'latest-pulled', 1, 'v*')]), ['v2'], 'rules add up: v1 was pulled last');
  assert.deepEqual(removed([rule(1, 'pulled-within', 7, '**')]), ['dev-1', 'stable', 'v2', 'v3', 'v4']);
  assert.deepEqual(removed([rule(1, 'pushed-within', 35)]), ['dev-1', 'stable', 'v1', 'v2']);
  assert.deepEqual(removed([rule(1, 'never', 0, 'dev-*')]), ['dev-1']);
  assert.deepEqual(removed([rule(1, 'never', 0, '**'), rule(2, 'always', 0, 'stable')]), ['dev-1', 'v1', 'v2', 'v3', 'v4'], 'always wins over never');
  assert.deepEqual(removed([rule(1, 'untagged-older-than', 7)]), [], 'an untagged rule removes no tag');
  assert.match(tagsToRemove([rule(4, 'never', 0, 'dev-*')], tags, now)[0]!.why, /rule 4: never keep/);
});

test('retention run: the dry run lists exactly what the run removes; immutable tags stay; GC takes the manifests and their referrers; the rules and runs are audited', async (t) => {
  const reg = await startRegistry(t, (c) => (c.gc.gracePeriod = 0));
  const c = reg.client();
  const images = [randomImage(), randomImage(), randomImage(), randomImage(), randomImage()];
  for (const [i, img] of images.entries()) {
    assert.equal((await pushImage(c, 'team/app', `v${i + 1}`, img)).status, 201);
    await new Promise((r) => setTimeout(r, 5)); // distinct push times
  }
  // v2 carries a signature-like referrer, v1 one too.
  const refOf = (img: (typeof images)[number]) => randomImage({ layers: 1, artifactType: 'application/vnd.example.sig', subject: { digest: img.digest, size: img.manifest.length, mediaType: img.mediaType } });
  const [sig1, sig2] = [refOf(images[0]!), refOf(images[1]!)];
  for (const s of [sig1, sig2]) assert.equal((await pushImage(c, 'team/app', s.digest, s)).status, 201);
  const untagged = randomImage();
  assert.equal((await pushImage(c, 'team/app', untagged.digest, untagged)).status, 201);
  assert.equal((await c.req('GET', '/v2/team/app/manifests/v1', { headers: { accept } })).status, 200, 'v1 is pulled');
  await new Promise((r) => setTimeout(r, 300)); // the pull time is written in the background

  for (const args of [
    ['retention', 'add', 'team', '--repos', '**', '--tags', 'v*', '--keep-latest-pushed', '2'],
    ['retention', 'add', 'team', '--repos', '**', '--tags', 'v*', '--keep-latest-pulled', '1'],
    ['retention', 'add', 'team', '--repos', 'app', '--remove-untagged-older-than', '0'],
    ['immutable', 'add', 'team', '--repos', '**', '--tags', 'v3'],
  ]) {
    const r = await registryCli(reg, args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const listed = await registryCli(reg, ['retention', 'list', 'team']);
  assert.match(listed.stdout, /keep the 2 most recently pushed of tags matching "v\*" in repositories matching "\*\*"/);

  const dry = await registryCli(reg, ['retention', 'run', 'team', '--dry-run', '--format', 'json']);
  assert.equal(dry.code, 0, dry.stderr);
  const planned = JSON.parse(dry.stdout) as { tags: { tag: string }[]; untagged: { digest: string }[]; immutable: { tag: string }[]; kept: number };
  assert.deepEqual(planned.tags.map((x) => x.tag), ['v2'], 'v1 pulled, v3 immutable, v4 and v5 the newest');
  assert.deepEqual(planned.immutable.map((x) => x.tag), ['v3']);
  assert.deepEqual(planned.untagged.map((x) => x.digest), [untagged.digest], 'the untagged image, not the referrers');
  // HEAD, which is no pull (a GET would make v2 the most recently pulled tag).
  assert.equal((await c.req('HEAD', '/v2/team/app/manifests/v2', { headers: { accept } })).status, 200, 'the dry run removed nothing');

  const real = await registryCli(reg, ['retention', 'run', 'team', '--format', 'json']);
  assert.equal(real.code, 0, real.stderr);
  assert.deepEqual(JSON.parse(real.stdout), planned, 'the run removes what the dry run listed');
  const tags = (await c.req('GET', '/v2/team/app/tags/list')).json<{ tags: string[] }>().tags;
  assert.deepEqual(tags, ['v1', 'v3', 'v4', 'v5']);

  const gc = await reg.registry.gc();
  const gone = new Set(gc.manifests.map((m) => m.digest));
  assert.deepEqual([images[1]!.digest, sig2.digest].map((d) => gone.has(d)), [true, true], 'v2 and its referrer are collected');
  assert.equal((await c.req('HEAD', `/v2/team/app/manifests/${untagged.digest}`, { headers: { accept } })).status, 404, 'the untagged image went with the run');
  assert.ok(gc.blobs.length >= 4, `its blobs and v2's are collected (${gc.blobs.length})`);
  assert.ok(!gone.has(sig1.digest), 'v1 keeps its referrer');
  const referrers = (await c.req('GET', `/v2/team/app/referrers/${images[0]!.digest}`)).json<{ manifests: { digest: string }[] }>();
  assert.deepEqual(referrers.manifests.map((m) => m.digest), [sig1.digest]);

  await reg.registry.audit.flush();
  const events = (await reg.registry.metadata.listAudit({ namespace: 'team', limit: 50 })).filter((e) => e.action.startsWith('retention')).reverse();
  assert.deepEqual(events.map((e) => e.action), ['retention-add', 'retention-add', 'retention-add', 'retention']);
  assert.match(events[3]!.detail!, /removed 1 tags and 1 untagged manifests, kept 4 tags, 1 immutable tags stay/);
});

test('rules that would remove every tag of a repository are refused without --force; bad rules name the field; the API runs them too', async (t) => {
  const reg = await startRegistry(t);
  const c = reg.client();
  assert.equal((await pushImage(c, 'team/tmp', 'a', randomImage())).status, 201);
  assert.equal((await registryCli(reg, ['retention', 'add', 'team', '--repos', 'tmp', '--remove-always'])).code, 0);
  const refused = await registryCli(reg, ['retention', 'run', 'team']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /retention of team would remove every tag of team\/tmp: check the rules, or give --force/);
  assert.equal((await c.req('GET', '/v2/team/tmp/manifests/a', { headers: { accept } })).status, 200, 'nothing went');
  const dry = await fetch(`${reg.url}/kiln/v1/namespaces/team/retention/run?dryRun=true&force=true`, { method: 'POST' });
  assert.equal(dry.status, 401, 'the management API needs credentials');

  const forced = await registryCli(reg, ['retention', 'run', 'team', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  // The serving process hears of another process's writes to its SQLite database within a poll
  // (metadata/sqlite.ts, data_version every 250 ms); its cached manifest goes then.
  await waitFor(async () => (await c.req('GET', '/v2/team/tmp/manifests/a', { headers: { accept } })).status === 404, 10_000, 'the removed tag answers 404');

  for (const [args, why] of [
    [['retention', 'add', 'team', '--repos', '**'], /give exactly one of --keep-latest-pushed/],
    [['retention', 'add', 'team', '--repos', '**', '--keep-latest-pushed', '0'], /latest-pushed: expected a count of at least 1/],
    [['retention', 'add', 'team', '--repos', '**', '--keep-pushed-within', 'soon'], /--keep-pushed-within: "soon" is not a whole number/],
    [['retention', 'add', 'team', '--repos', '{a', '--keep-always'], /repos: "\{a" is not a valid pattern/],
    [['retention', 'rm', '99'], /no retention rule 99/],
  ] as const) {
    const r = await registryCli(reg, [...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, why, args.join(' '));
  }
});
