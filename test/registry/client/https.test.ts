import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, tempDir } from '../../support/env.js';

// The registry client over TLS: node:https is loaded on the first https request (a plain-HTTP
// registry never pays for it), certificates are verified, and a CA the user trusts is accepted.

const httpModule = pathToFileURL(join(repoRoot, 'dist', 'src', 'registry', 'client', 'http.js')).href;

/** GET `url` with the client's send() in a new Node.js process (the CA to trust is fixed at start). */
async function get(url: string, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const script = `import { send } from ${JSON.stringify(httpModule)};
const loaded = () => process.moduleLoadList.some((m) => m === 'NativeModule https');
const before = loaded();
try {
  const r = await send({ method: 'GET', url: new URL(${JSON.stringify(url)}) });
  console.log(JSON.stringify({ before, after: loaded(), status: r.status, api: r.headers['docker-distribution-api-version'] }));
} catch (e) {
  console.log(JSON.stringify({ before, error: e.message }));
}`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  return JSON.parse(stdout) as Record<string, unknown>;
}

test('an https registry: TLS loaded on the first https request, the certificate verified, a trusted CA accepted', async (t) => {
  const dir = await tempDir(t);
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`;

  assert.deepEqual(await get(url, { NODE_EXTRA_CA_CERTS: cert }), { before: false, after: true, status: 200, api: 'registry/2.0' });

  const untrusted = await get(url, { NODE_EXTRA_CA_CERTS: '' });
  assert.equal(untrusted.before, false);
  assert.match(String(untrusted.error), /self[- ]signed certificate/);
});
