import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { onPostgres, pushImage, randomImage, startRegistry, client, waitFor } from '../support.js';
import { serve } from '../../../../src/registry/server/server.js';
import { logger } from '../../../../src/registry/server/log.js';
import { webhookAdmin } from '../../../../src/registry/server/webhooks/hooks.js';

// Two replicas on one PostgreSQL share the webhook queue: each claims a due delivery before
// sending it, so every delivery reaches the receiver once, whichever replica queued it.

if (await onPostgres()) {
  test('two replicas on one PostgreSQL send each queued delivery exactly once', async (t) => {
    const ids: string[] = [];
    const server = createServer((req, res) => {
      ids.push(String(req.headers['x-kiln-delivery']));
      req.resume().on('end', () => res.writeHead(200).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;

    const a = await startRegistry(t, (c) => {
      c.webhooks.pollInterval = 0.02;
      c.webhooks.concurrency = 8;
    });
    const b = await serve({ ...a.config, http: { ...a.config.http, addr: '127.0.0.1:0' } }, { log: logger('error', () => {}) });
    t.after(() => b.close());
    const hooks = webhookAdmin(a.registry.metadata, 'test', a.config.webhooks);
    for (const path of ['one', 'two', 'three']) await hooks.add('team', { url: url + path, secret: 'x', events: ['push'] });
    a.registry.webhooks.invalidate();
    b.registry.webhooks.invalidate();

    const clients = [client(a.url), client(b.url)];
    for (let i = 0; i < 8; i++) assert.equal((await pushImage(clients[i % 2]!, 'team/app', `v${i}`, randomImage({ layers: 1 }))).status, 201);
    await waitFor(async () => ids.length >= 24, 10_000, '24 deliveries');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ids.length, 24, 'no delivery sent twice');
    assert.equal(new Set(ids).size, 24);
  });
}
