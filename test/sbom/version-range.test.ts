import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersionsOf, packageMatches, parsePackageQuery, parseVersionRange, satisfies } from '../../src/sbom/version-range.js';
import { readSbomPackages } from '../../src/sbom/sbom-document.js';
import { SbomUnreadable } from '../../src/sbom/errors.js';

// Package queries of kiln query and the registry search: NAME@RANGE, compared per ecosystem.

test('NAME@RANGE parses names with npm scopes, comma-separated constraints and every operator', () => {
  assert.deepEqual(parsePackageQuery('bash'), { name: 'bash' });
  assert.deepEqual(parsePackageQuery('bash@<5.2.15-3'), { name: 'bash', range: [{ op: '<', version: '5.2.15-3' }], rangeText: '<5.2.15-3' });
  assert.deepEqual(parsePackageQuery('@babel/core@>=7, <7.23.2').range, [
    { op: '>=', version: '7' },
    { op: '<', version: '7.23.2' },
  ]);
  assert.deepEqual(parsePackageQuery('@babel/core').name, '@babel/core');
  assert.deepEqual(parseVersionRange('==2.31.0,!=1,1.0,<=3,>0'), [
    { op: '=', version: '2.31.0' },
    { op: '!=', version: '1' },
    { op: '=', version: '1.0' },
    { op: '<=', version: '3' },
    { op: '>', version: '0' },
  ]);
  for (const bad of ['>>1', '<', '1 2', 'a,,b', '=<1']) assert.throws(() => parseVersionRange(bad), /is not OPERATOR VERSION/, bad);
  assert.throws(() => parsePackageQuery('@'), /expected NAME/);
  assert.throws(() => parsePackageQuery('x@'), /empty version range/);
});

test('versions compare in the ecosystem of the package URL type, generically otherwise', () => {
  const cases: [string, string, string, number][] = [
    ['deb', '1:1.0', '2.0', 1],
    ['deb', '1.0~rc1', '1.0', -1],
    ['deb', '3.0.11-1~deb12u2', '3.0.11-1', -1],
    ['apk', '1.2.4_git20230717-r4', '1.2.4-r9', 1],
    ['apk', '1.2.4_rc1', '1.2.4', -1],
    ['pypi', '1.0.dev1', '1.0a1', -1],
    ['pypi', '1.0', '1.0.0', 0],
    ['pypi', '1.0.post1', '1.0', 1],
    ['npm', '1.0.0-alpha.2', '1.0.0-alpha.10', -1],
    ['npm', '1.0.0-rc.1', '1.0.0', -1],
    ['golang', 'v1.10.0', 'v1.9.3', 1],
    // Not a version its ecosystem allows: compared generically rather than failing the query.
    ['npm', 'latest-2', 'latest-10', -1],
  ];
  for (const [type, a, b, want] of cases) assert.equal(Math.sign(compareVersionsOf(type, a, b)), want, `${type}: ${a} vs ${b}`);
  assert.ok(satisfies('deb', '3.0.9-1', parseVersionRange('>=3.0,<3.0.11')));
  assert.ok(!satisfies('deb', '3.0.11-1', parseVersionRange('>=3.0,<3.0.11')));
});

test('a package matches by name as its ecosystem compares names, or by its source package', () => {
  const flask = { name: 'Flask_Login', version: '0.6.3', type: 'pypi' };
  assert.ok(packageMatches(flask, 'flask-login'));
  assert.ok(packageMatches(flask, 'FLASK.LOGIN', parseVersionRange('<1')));
  assert.ok(!packageMatches(flask, 'flask-login', parseVersionRange('>=1')));
  assert.ok(!packageMatches({ name: 'flask_login', version: '1', type: 'npm' }, 'flask-login'), 'only Python normalises separators');
  assert.ok(packageMatches({ name: 'libssl3', version: '3.0.9-1', type: 'deb', source: 'openssl' }, 'openssl'));
});

test('SBOM documents: SPDX and CycloneDX packages with purl types and Debian sources; anything else is an error naming the document', () => {
  const spdx = readSbomPackages(
    JSON.stringify({
      spdxVersion: 'SPDX-2.3',
      packages: [
        { name: 'libssl3', versionInfo: '3.0.9-1', externalRefs: [{ referenceType: 'purl', referenceLocator: 'pkg:deb/debian/libssl3@3.0.9-1?arch=amd64&upstream=openssl%403.0.9-1' }] },
        { name: 'image', SPDXID: 'SPDXRef-image' },
      ],
    }),
    'doc.json',
  );
  assert.deepEqual(spdx, [{ name: 'libssl3', version: '3.0.9-1', type: 'deb', purl: 'pkg:deb/debian/libssl3@3.0.9-1?arch=amd64&upstream=openssl%403.0.9-1', source: 'openssl' }]);
  const cdx = readSbomPackages(
    JSON.stringify({
      bomFormat: 'CycloneDX',
      components: [
        { name: 'core', group: '@babel', version: '7.0.0', purl: 'pkg:npm/%40babel/core@7.0.0', components: [{ name: 'inner', version: '1' }] },
        { name: 'bash', version: '5.2', properties: [{ name: 'kiln:package:source', value: 'bash@5.2-1' }] },
      ],
    }),
    'bom.json',
  );
  assert.deepEqual(
    cdx.map((p) => [p.name, p.type, p.source]),
    [
      ['@babel/core', 'npm', undefined],
      ['inner', 'unknown', undefined],
      ['bash', 'unknown', 'bash'],
    ],
  );
  assert.throws(() => readSbomPackages('{"hello":1}', 'x.json'), (e: unknown) => e instanceof SbomUnreadable && /x\.json: unknown SBOM format/.test(e.message));
  assert.throws(() => readSbomPackages('{', 'y.json'), /y\.json: not valid JSON/);
  assert.throws(() => readSbomPackages('{"spdxVersion":"SPDX-2.3"}', 'z.json'), /z\.json: SPDX document without a "packages" array/);
});
