import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compareDpkgVersions } from '../../src/sbom/version-dpkg.js';
import { compareApkVersions, comparePep440, compareSemver } from '../../src/sbom/version-ecosystem.js';

// [a, b, expected sign of a compared to b]
const dpkgPairs: [string, string, -1 | 0 | 1][] = [
  ['1.0', '1.0', 0],
  ['1.0', '1.0-0', 0],
  ['1.0-1', '1.0-2', -1],
  ['1.0-10', '1.0-9', 1],
  ['1.0', '1.1', -1],
  ['1.10', '1.9', 1],
  ['1.01', '1.1', 0],
  ['1.001', '1.0001', 0],
  ['1.0', '1.0.0', -1],
  ['0:1.0', '1.0', 0],
  ['1:0.1', '2.0', 1],
  ['1:1.0', '2:0.1', -1],
  ['10:1', '9:2', 1],
  ['1.0~rc1', '1.0', -1],
  ['1.0~rc1', '1.0~rc2', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~~a', '1.0~~', 1],
  ['1.0~', '1.0', -1],
  ['1.0~beta', '1.0~alpha', 1],
  ['1.0a', '1.0', 1],
  ['1.0a', '1.0b', -1],
  ['1.0a', '1.0+', -1],
  ['1.0+', '1.0.', -1],
  ['1.0-1.', '1.0-1+', 1],
  ['1.0_1', '1.0+1', 1],
  ['1.0+b1', '1.0', 1],
  ['1.0-1+b1', '1.0-1', 1],
  ['1.0-1+b1', '1.0-2', -1],
  ['1.0-1~bpo1', '1.0-1', -1],
  ['1.0-1+deb12u1', '1.0-1', 1],
  ['1.0-1+deb12u1', '1.0-1+deb12u2', -1],
  ['1.0-1+deb11u1', '1.0-1+deb12u1', -1],
  ['2.36.1-8', '2.36.1-8+deb11u1', -1],
  ['3.0.11-1~deb12u2', '3.0.13-1~deb12u1', -1],
  ['3.0.14-1~deb12u1', '3.0.13-1~deb12u1', 1],
  ['1.2.13.dfsg-1', '1:1.2.11.dfsg-2', -1],
  ['7.88.1-10+deb12u5', '7.88.1-10+deb12u12', -1],
  ['2.7.4-0ubuntu1', '2.7.4-0ubuntu1.1', -1],
  ['1.2.3-1a', '1.2.3-1b', -1],
  ['A', 'a', -1],
  ['Z', 'a', -1],
  ['a', '+', -1],
  ['1.2-3-4', '1.2-3-5', -1],
  ['1.2-3-4', '1.2-3', 1],
  ['1:1.2-3', '1:1.2-3', 0],
  ['0.0', '0', 1],
  ['0', '00', 0],
  ['1.0.1', '1.0a', 1],
  ['1.0~rc1-1', '1.0-1', -1],
  ['1.0-1~', '1.0-1', -1],
  ['9.9.9', '10', -1],
  ['2024.01', '2024.1', 0],
  ['1:2.38.1-5+deb12u3', '1:2.38.1-5+deb12u2', 1],
  ['12.2.0-14', '12.2.0-14+deb12u1', -1],
  ['5.2.15-2', '5.2.15-2+b7', -1],
  ['1.0.0~git20230101', '1.0.0', -1],
  ['1.0.0+git20230101', '1.0.0', 1],
  ['3.0.13-1~deb12u1', '3.0.13-1', -1],
  ['252.22-1~deb12u1', '252.30-1~deb12u2', -1],
];

function dpkgSays(a: string, b: string): -1 | 0 | 1 {
  const ask = (op: string) => {
    const r = spawnSync('dpkg', ['--compare-versions', a, op, b]);
    assert.ok(r.status === 0 || r.status === 1, `dpkg refused ${a} or ${b}: ${r.stderr}`);
    return r.status === 0;
  };
  return ask('lt') ? -1 : ask('eq') ? 0 : 1;
}

const haveDpkg = spawnSync('dpkg', ['--version']).status === 0;

test('dpkg version comparison agrees with the expected answer and with dpkg --compare-versions on every pair', { skip: haveDpkg ? false : 'dpkg is not installed' }, () => {
  assert.ok(dpkgPairs.length >= 50);
  for (const [a, b, want] of dpkgPairs) {
    assert.equal(dpkgSays(a, b), want, `dpkg --compare-versions ${a} vs ${b} (the table's answer is wrong)`);
    assert.equal(Math.sign(compareDpkgVersions(a, b)), want, `${a} vs ${b}`);
    assert.equal(Math.sign(compareDpkgVersions(b, a)), -want || 0, `${b} vs ${a}`);
  }
});

test('dpkg versions with bad syntax are refused with the reason', () => {
  assert.throws(() => compareDpkgVersions('', '1'), /empty/);
  assert.throws(() => compareDpkgVersions('a:1', '1'), /epoch "a" is not a number/);
  assert.throws(() => compareDpkgVersions('1:', '1'), /nothing after the colon/);
  assert.throws(() => compareDpkgVersions('1.0 1', '1'), /embedded spaces/);
  assert.throws(() => compareDpkgVersions('1.0-', '1'), /empty revision/);
});

test('semantic versions follow SemVer 2.0 precedence: pre-releases below the release, numeric identifiers below others', () => {
  const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0', '1.10.0', '2.0.0'];
  for (let i = 0; i + 1 < ordered.length; i++) {
    assert.equal(compareSemver(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(compareSemver(ordered[i + 1]!, ordered[i]!), 1);
  }
  assert.equal(compareSemver('1.0.0+build.5', '1.0.0'), 0);
  assert.equal(compareSemver('v1.2', '1.2.0'), 0);
  assert.throws(() => compareSemver('latest', '1.0.0'), /not a semantic version/);
});

test('PyPI versions follow PEP 440 ordering: dev, pre, final, post, local', () => {
  const ordered = ['1.0.dev0', '1.0a1', '1.0a2.dev1', '1.0a2', '1.0b1', '1.0rc1', '1.0', '1.0+local.1', '1.0.post1.dev0', '1.0.post1', '1.0.1', '1.1', '1!0.1'];
  for (let i = 0; i + 1 < ordered.length; i++) {
    assert.equal(comparePep440(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(comparePep440(ordered[i + 1]!, ordered[i]!), 1, `${ordered[i + 1]} > ${ordered[i]}`);
  }
  assert.equal(comparePep440('1.0', '1.0.0'), 0);
  assert.equal(comparePep440('1.0-1', '1.0.post1'), 0);
  assert.equal(comparePep440('1.0RC1', '1.0rc1'), 0);
  assert.throws(() => comparePep440('one', '1.0'), /not a PEP 440 version/);
});

test('apk versions: suffixes _alpha.._rc below the release, _p above, then -rN revisions', () => {
  const ordered = ['1.2.3_alpha', '1.2.3_beta2', '1.2.3_rc1', '1.2.3', '1.2.3-r1', '1.2.3-r10', '1.2.3_p1', '1.2.3a', '1.2.4', '1.10'];
  for (let i = 0; i + 1 < ordered.length; i++) {
    assert.equal(compareApkVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(compareApkVersions(ordered[i + 1]!, ordered[i]!), 1);
  }
  assert.equal(compareApkVersions('3.1.4-r0', '3.1.4'), 0);
  assert.throws(() => compareApkVersions('abc', '1'), /not an apk version/);
});
