// BuildKit's frontend/dockerfile/dockerfile_runsecurity_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors. BuildKit's AllowedEntitlements is `kiln build --allow`;
// kiln has no daemon, so the grant is the build's own (BuildKit's "granted" sandbox mode).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('runsecurity');
});
after(() => b.close());

// Docker's default bounding set (BuildKit dockerfile_runsecurity_test.go:104, :135, :160).
/** This process's bounding set of capabilities 0-37, as BuildKit's test masks it. */
const ownBounding = (BigInt('0x' + readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s*([0-9a-f]+)$/m)![1]) & 0x3fffffffffn).toString(16);

const defaultCapBnd = '[ "$(cat /proc/self/status | grep CapBnd)" == "CapBnd:	00000000a80425fb" ]';

test('testRunSecurityInsecure: with --allow security.insecure, RUN --security=insecure has every capability; the next RUN is back to the default', async () => {
  const dir = await b.context({
    Dockerfile:
      'FROM busybox\n' +
      // BuildKit dockerfile_runsecurity_test.go:103: capabilities 0-37 all in the bounding set, that is
      // every one the daemon has (getAllCaps); kiln's are this process's, and a machine that is itself
      // a container may lack some (here CAP_SYS_RESOURCE), so the expected mask is read, not 3fffffffff.
      `RUN --security=insecure [ "$(printf '%x' $(( $(cat /proc/self/status | grep CapBnd | cut -f 2 | sed s#^#0x#) & 0x3fffffffff)))" == "${ownBounding}" ]\n` +
      // In effect too: CAP_SYS_ADMIN (21) in CapEff, and /proc/kcore no longer masked by /dev/null.
      'RUN --security=insecure [ $(( 0x$(grep CapEff /proc/self/status | cut -f 2) >> 21 & 1 )) = 1 ] && [ "$(stat -c %t:%T /proc/kcore)" != "1:3" ]\n' +
      `RUN ${defaultCapBnd} && [ $(( 0x$(grep CapEff /proc/self/status | cut -f 2) >> 21 & 1 )) = 0 ]\n`,
  });
  const r = await b.build(dir, ['--allow', 'security.insecure']);
  assert.equal(r.code, 0, r.stderr);
});

test('testRunSecuritySandbox: RUN --security=sandbox has the default capabilities, no grant needed', async () => {
  const r = await b.build(await b.context({ Dockerfile: `FROM busybox\nRUN --security=sandbox ${defaultCapBnd}\n` }));
  assert.equal(r.code, 0, r.stderr);
});

test('testRunSecurityDefault: a RUN without --security has the default capabilities even with the grant', async () => {
  const r = await b.build(await b.context({ Dockerfile: `FROM busybox\nRUN ${defaultCapBnd}\n` }), ['--allow', 'security.insecure']);
  assert.equal(r.code, 0, r.stderr);
});

test('RUN --security=insecure without --allow security.insecure is refused before any step runs', async () => {
  const dir = await b.context({ Dockerfile: 'FROM busybox\nRUN echo $((6*7))\nRUN --security=insecure true\n' });
  const r = await b.build(dir);
  assert.notEqual(r.code, 0);
  // BuildKit dockerfile_runsecurity_test.go:128 and util/entitlements/entitlements.go:165.
  assert.match(r.stderr, /Dockerfile:3.*entitlement security\.insecure is not allowed/);
  assert.doesNotMatch(r.stderr, /^#\d+ .*\b42$/m);
  const unknown = await b.build(dir, ['--allow', 'security.unsafe']);
  assert.match(unknown.stderr, /unknown entitlement security\.unsafe/);
});
