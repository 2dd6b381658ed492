import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalize, parseReference, familiarString } from '../src/reference/reference.js';

test('a bare name normalises to docker.io/library with tag latest', () => {
  assert.equal(normalize('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalize('user/app:1.0'), 'docker.io/user/app:1.0');
  assert.equal(normalize('index.docker.io/library/busybox'), 'docker.io/library/busybox:latest');
});

test('a first component with a dot, a port or localhost is a registry host', () => {
  assert.equal(normalize('localhost:5000/a/b:t'), 'localhost:5000/a/b:t');
  assert.equal(normalize('localhost/a'), 'localhost/a:latest');
  assert.equal(normalize('quay.io/x/y'), 'quay.io/x/y:latest');
  assert.equal(normalize('[::1]:5000/a'), '[::1]:5000/a:latest');
});

test('digest references keep the digest and get no default tag', () => {
  const d = 'sha256:' + 'a'.repeat(64);
  assert.equal(normalize(`busybox@${d}`), `docker.io/library/busybox@${d}`);
  const r = parseReference(`busybox:1.36@${d}`);
  assert.equal(r.tag, '1.36');
  assert.equal(r.digest, d);
});

test('familiar form drops docker.io and library/', () => {
  assert.equal(familiarString(parseReference('docker.io/library/busybox:latest')), 'busybox:latest');
  assert.equal(familiarString(parseReference('localhost:5000/a:b')), 'localhost:5000/a:b');
});

for (const [bad, why] of [
  ['', /empty/],
  ['Busybox', /lowercase/],
  ['busy box', /not a valid/],
  ['busybox:-bad', /not a valid tag/],
  ['busybox@sha256:abc', /not a valid digest/],
  ['a//b', /not a valid path component/],
  ['a/b:' + 'x'.repeat(129), /not a valid tag/],
  ['-abc', /not a valid path component/],
] as const) {
  test(`invalid reference "${bad.slice(0, 20)}" is rejected saying why`, () => {
    assert.throws(() => parseReference(bad), (e: Error) => {
      assert.match(e.message, why);
      assert.match(e.message, /invalid reference/);
      return true;
    });
  });
}
