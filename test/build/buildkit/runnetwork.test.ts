// BuildKit's frontend/dockerfile/dockerfile_runnetwork_test.go, behaviour by behaviour: each test
// names the BuildKit test function it mirrors. BuildKit's force-network-mode frontend attribute is
// `kiln build --network`; the echo server is a loopback TCP server that writes "foo" to whoever
// connects. busybox-static's nc has no -z: a refused connection is one that prints no "foo".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
let echo: Server;
let port: number;
before(async () => {
  b = await openBuilder('runnetwork');
  echo = createServer((sock) => sock.end('foo\n'));
  await new Promise<void>((ok) => echo.listen(0, '127.0.0.1', ok));
  port = (echo.address() as AddressInfo).port;
});
after(async () => {
  await new Promise((ok) => echo.close(ok));
  await b.close();
});

test('testRunNoNetwork: RUN --network=none has no interface but lo', async () => {
  const dir = await b.context({
    Dockerfile: [
      'FROM busybox',
      'RUN --network=none ! ip link show eth0',
      // and nothing else but the loopback interface
      'RUN --network=none [ "$(ip -o link | grep -v ": lo:" | wc -l)" = 0 ] && ip -o link | grep -q ": lo:"',
      // BuildKit's second half when not rootless: the default network has eth0 (kiln's default
      // network is the host's, so only where the host has one)
      ...(networkInterfaces().eth0 ? ['RUN ip link show eth0'] : []),
      '',
    ].join('\n'),
  });
  const r = await b.build(dir, ['--no-cache']);
  assert.equal(r.code, 0, r.stderr);
});

test('testRunGlobalNetwork: kiln build --network host reaches a loopback server; RUN --network=none still cannot', async () => {
  const dir = await b.context({ Dockerfile: `FROM busybox\nRUN nc 127.0.0.1 ${port} | grep foo\nRUN --network=none ! nc 127.0.0.1 ${port} </dev/null | grep foo\n` });
  const r = await b.build(dir, ['--no-cache', '--network', 'host']);
  assert.equal(r.code, 0, r.stderr);
});
