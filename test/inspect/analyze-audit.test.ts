import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixture, kiln, kilnOk } from '../support/env.js';

// kiln analyze and kiln audit on images built from the busybox fixture, shaped after the seeds'
// examples: a tool installed in one layer and removed in the next, a key copied in and deleted.

let work: string;
let root: string;

async function build(name: string, files: Record<string, string>): Promise<string> {
  const ctx = join(work, `ctx-${name}`);
  await mkdir(ctx, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(ctx, p, '..'), { recursive: true });
    await writeFile(join(ctx, p), content);
  }
  await kilnOk(root, ['build', '-q', '-t', name, ctx]);
  return ctx;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-inspect-'));
  root = join(work, 'store');
  await kilnOk(root, ['load', '-i', fixture('busybox')]);
  // The seed's "install git, remove it later" as a stand-in: a 300 kB tool tree added, then removed.
  await build('gitwaste', {
    Dockerfile: [
      'FROM busybox',
      'RUN mkdir -p /usr/lib/git-core && dd if=/dev/zero of=/usr/lib/git-core/git bs=1000 count=300 2>/dev/null && dd if=/dev/zero of=/usr/lib/git-core/git-remote bs=1000 count=50 2>/dev/null',
      'RUN rm -rf /usr/lib/git-core',
      '',
    ].join('\n'),
  });
  // One file of exactly 100000 bytes, deleted by the next layer: waste that can be computed by hand.
  await build('onefile', { Dockerfile: 'FROM busybox\nRUN dd if=/dev/zero of=/big bs=1000 count=100 2>/dev/null\nRUN rm /big\n' });
  await build('lean', { Dockerfile: 'FROM busybox\nRUN echo hi > /hello\nUSER 1000\nHEALTHCHECK CMD true\n' });
  await build('unsafe', {
    Dockerfile: [
      'FROM busybox',
      'COPY id_rsa /root/.ssh/id_rsa',
      'COPY dotenv /app/.env',
      'RUN chmod 4755 /bin/busybox && touch /shared && chmod 666 /shared && mkdir -p /var/cache/apk && echo idx > /var/cache/apk/APKINDEX.tar.gz',
      'RUN rm /root/.ssh/id_rsa',
      '',
    ].join('\n'),
    id_rsa: '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
    dotenv: 'DB_PASSWORD=hunter2\n',
  });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Analysis {
  efficiency: number;
  wastedBytes: number;
  userWastedPercent: number;
  totalSize: number;
  layers: { createdBy: string; size: number; added: number; changed: number; removed: number }[];
  inefficiencies: { path: string; count: number; wastedBytes: number }[];
}

async function analyze(name: string): Promise<Analysis> {
  return JSON.parse(await kilnOk(root, ['analyze', '--format', 'json', name]));
}

test('a file deleted by a later layer is waste computed as dive does: efficiency and wasted bytes by hand', async () => {
  const a = await analyze('onefile');
  const base = a.layers[0]!.size;
  assert.equal(a.wastedBytes, 100000);
  assert.equal(a.efficiency, base / (base + 100000));
  assert.equal(a.userWastedPercent, 1);
  assert.equal(a.totalSize, base + 100000);
  assert.deepEqual(a.inefficiencies, [{ path: '/big', count: 2, wastedBytes: 100000 }]);
  assert.deepEqual(a.layers.map((l) => [l.added, l.changed, l.removed]).slice(1), [[1, 0, 0], [0, 0, 1]]);
});

test("the seed's install-then-remove example: the removed tool is still shipped, layer by layer", async () => {
  const a = await analyze('gitwaste');
  assert.equal(a.layers.length, 3);
  assert.match(a.layers[1]!.createdBy, /git-core/);
  assert.equal(a.layers[1]!.size, 350000);
  assert.equal(a.layers[2]!.size, 0);
  assert.equal(a.layers[2]!.removed, 2);
  assert.equal(a.wastedBytes, 350000);
  assert.ok(a.efficiency < 0.9, String(a.efficiency));
  assert.deepEqual(a.inefficiencies.slice(0, 2).map((w) => w.path), ['/usr/lib/git-core/git', '/usr/lib/git-core/git-remote']);
  const text = await kilnOk(root, ['analyze', 'gitwaste']);
  assert.match(text, /Potential wasted: {4}350\.0 kB/);
  assert.match(text, /Largest wasted paths\n.*\n +2 +300\.0 kB {2}\/usr\/lib\/git-core\/git\n/);
});

test('an image without waste has efficiency 1', async () => {
  const a = await analyze('lean');
  assert.equal(a.wastedBytes, 0);
  assert.equal(a.efficiency, 1);
});

test('CI mode: thresholds from .dive-ci or flags fail the command; a passing image exits 0', async () => {
  const dir = join(work, 'ci');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, '.dive-ci'), 'rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: disabled\n');
  const fail = await kiln(root, ['analyze', '--ci', 'gitwaste'], { cwd: dir });
  assert.equal(fail.code, 1, fail.stderr);
  assert.match(fail.stdout, /FAIL: lowestEfficiency \(limit 0\.95, actual 0\.\d+\)\n {2}PASS: highestWastedBytes \(limit 20000000, actual 350000\)\nResult: FAIL/);
  const pass = await kiln(root, ['analyze', '--ci', 'lean'], { cwd: dir });
  assert.equal(pass.code, 0, pass.stdout);
  const flags = await kiln(root, ['analyze', '--format', 'json', '--highest-wasted-bytes', '100kB', 'onefile'], { cwd: work });
  assert.equal(flags.code, 0, flags.stdout);
  assert.deepEqual(JSON.parse(flags.stdout).ci, { pass: true, rules: [{ rule: 'highestWastedBytes', limit: 100000, actual: 100000, pass: true }] });
  await writeFile(join(dir, '.dive-ci'), 'rules:\n  lowestEfficiency: lots\n');
  const bad = await kiln(root, ['analyze', '--ci', 'lean'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /\.dive-ci: rules\.lowestEfficiency: "lots" is not a ratio/);
});

test('analyze and audit of an image that does not exist fail clearly', async () => {
  for (const cmd of ['analyze', 'audit']) {
    const r = await kiln(root, [cmd, 'no-such-image']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /image "no-such-image" not found in the store/);
  }
});

interface AuditFinding {
  id: string;
  severity: string;
  path?: string;
  layer?: number;
  deletedIn?: number;
  owner?: string;
  mode?: string;
}

test('audit finds SUID files with owner and mode, a deleted private key still shipped, .env, world-writable files, caches, root, no HEALTHCHECK', async () => {
  const findings = JSON.parse(await kilnOk(root, ['audit', '--format', 'json', 'unsafe'])) as AuditFinding[];
  const find = (id: string, path?: string) => findings.find((f) => f.id === id && (path === undefined || f.path === path));
  assert.deepEqual(find('KA1001', '/bin/busybox'), { ...find('KA1001', '/bin/busybox'), owner: '0:0', mode: '4755', severity: 'medium' });
  const key = find('KA1007', '/root/.ssh/id_rsa');
  assert.ok(key, JSON.stringify(findings));
  assert.equal(key!.severity, 'high');
  assert.equal(key!.layer, 1);
  assert.equal(key!.deletedIn, 4);
  assert.ok(find('KA1006', '/app/.env'));
  assert.ok(find('KA1004', '/shared'));
  assert.ok(!findings.some((f) => f.id === 'KA1004' && f.path?.startsWith('/tmp')), '/tmp is allowed to be world-writable');
  assert.ok(find('KA1008', '/var/cache/apk'));
  assert.ok(find('KA1003'));
  assert.ok(find('KA1009'));
  assert.ok(!find('KA1005'), 'without a Dockerfile or annotations the base cannot be judged');
  const text = await kilnOk(root, ['audit', 'unsafe']);
  assert.match(text, /^HIGH {5}KA1006 {2}secret in the image: \/app\/\.env/m);
  assert.match(text, /^MEDIUM {3}KA1001 {2}file with the SUID bit: \/bin\/busybox \(owner 0:0, mode 4755, layer 3\)$/m);
});

test('audit --fail-on sets the exit code; -f judges the Dockerfile FROM lines; a lean image passes', async () => {
  const high = await kiln(root, ['audit', '--fail-on', 'high', 'unsafe']);
  assert.equal(high.code, 1);
  const critical = await kiln(root, ['audit', '--fail-on', 'critical', 'unsafe']);
  assert.equal(critical.code, 0);
  const df = join(work, 'Dockerfile.pinned');
  await writeFile(df, 'FROM busybox AS base\nFROM base\nFROM debian:12@sha256:' + 'c'.repeat(64) + '\n');
  const withFile = JSON.parse(await kilnOk(root, ['audit', '--format', 'json', '-f', df, 'lean'])) as AuditFinding[];
  assert.deepEqual(withFile.filter((f) => f.id === 'KA1005').length, 1);
  const lean = JSON.parse(await kilnOk(root, ['audit', '--format', 'json', 'lean'])) as AuditFinding[];
  assert.deepEqual(lean.map((f) => f.id), []);
  const bad = await kiln(root, ['audit', '--fail-on', 'severe', 'lean']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--fail-on: "severe" is not one of critical, high, medium, low, info/);
});
