import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../support/env.js';

// A new store's oci-layout and empty index.json are written without fsync (every later index.json
// is fsynced): what a crash can leave of them, empty files, must read as a new store.

test('many processes opening one new store at once all find a valid, empty index', async (t) => {
  const root = join(await tempDir(t), 'store');
  const stores = await Promise.all(Array.from({ length: 8 }, () => Store.open(root)));
  for (const s of stores) assert.deepEqual((await s.readIndex()).manifests, []);
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
});

test('the empty files a crash can leave behind read as a new store, and are written properly again', async (t) => {
  const root = await tempDir(t);
  await Store.open(root);
  writeFileSync(join(root, 'oci-layout'), '');
  writeFileSync(join(root, 'index.json'), '');
  const store = await Store.open(root);
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  assert.deepEqual((await store.readIndex()).manifests, []);
  const blob = await store.content.put('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  await store.writeImage(JSON.parse(readFileSync(store.content.blobPath(blob.digest), 'utf8')), [], ['empty:1']);
  assert.equal(JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')).manifests.length, 1);
});
