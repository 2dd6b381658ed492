// Hostile layers. Each archive is made by hand with tar-stream; each test checks both that the
// applier did the right thing inside dest and that nothing outside dest changed.

import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { ArchiveInvalid, UnsafeArchiveEntry } from '../../src/errors.js';
import { applyLayer } from '../../src/archive/index.js';
import { readXattrs } from '../../src/archive/xattr.js';
import { bufferStream, craftTar, describeTree, tempDir, type Crafted } from './fixtures.js';

// Device nodes, other owners and trusted.* xattrs need root.
const asRoot = process.getuid?.() === 0 ? {} : { skip: 'needs root' };

describe('applying hostile layers', () => {
  let box: ReturnType<typeof tempDir>;
  let dest: string;
  let outside: string;
  let before: ReturnType<typeof describeTree>;

  beforeEach(() => {
    box = tempDir();
    dest = join(box.dir, 'dest');
    outside = join(box.dir, 'outside');
    mkdirSync(dest);
    mkdirSync(join(outside, 'dir'), { recursive: true, mode: 0o755 });
    writeFileSync(join(outside, 'secret'), 'secret');
    writeFileSync(join(outside, 'dir', 'inner'), 'inner');
    before = describeTree(outside);
  });
  afterEach(() => {
    try {
      // The one assertion every test shares: the world outside dest is as it was.
      assert.deepEqual(describeTree(outside), before, 'files outside dest changed');
    } finally {
      box.cleanup();
    }
  });

  async function apply(entries: Crafted[], whiteouts: 'delete' | 'overlay' = 'delete'): Promise<void> {
    await applyLayer(bufferStream(await craftTar(entries)), dest, { whiteouts });
  }

  const unsafe = (name: string) => (err: unknown) => {
    assert.ok(err instanceof UnsafeArchiveEntry, `expected UnsafeArchiveEntry, got ${String(err)}`);
    assert.ok(err.message.includes(name), `message names the entry: ${err.message}`);
    return true;
  };

  test('an entry with ".." is refused and names the entry', async () => {
    await assert.rejects(apply([{ name: '../outside/secret', content: 'pwned' }]), unsafe('../outside/secret'));
    await assert.rejects(apply([{ name: 'a/../../outside/new', content: 'pwned' }]), unsafe('a/../../outside/new'));
    assert.ok(!existsSync(join(outside, 'new')));
  });

  test('an absolute entry is refused', async () => {
    await assert.rejects(apply([{ name: join(outside, 'secret'), content: 'pwned' }]), unsafe(join(outside, 'secret')));
  });

  test('nothing is written through an absolute symlink: evil -> /outside, then evil/secret', async () => {
    await apply([
      { name: 'evil', type: 'symlink', linkname: outside },
      { name: 'evil/secret', content: 'pwned' },
      { name: 'evil/dir/inner', content: 'pwned' },
    ]);
    // The symlink exists as a symlink, and the writes landed at the same path inside dest.
    assert.equal(readlinkSync(join(dest, 'evil')), outside);
    assert.equal(readFileSync(join(dest, outside, 'secret'), 'utf8'), 'pwned');
    assert.equal(readFileSync(join(dest, outside, 'dir/inner'), 'utf8'), 'pwned');
  });

  test('nothing is written through a relative symlink climbing out: evil -> ../../..', async () => {
    await apply([
      { name: 'sub/', type: 'directory' },
      { name: 'sub/evil', type: 'symlink', linkname: '../../../../../../../..' + outside },
      { name: 'sub/evil/secret', content: 'pwned' },
    ]);
    assert.equal(readFileSync(join(dest, outside, 'secret'), 'utf8'), 'pwned');
  });

  test('a symlink chain and a symlink loop stay inside or fail', async () => {
    await apply([
      { name: 'one', type: 'symlink', linkname: 'two' },
      { name: 'two', type: 'symlink', linkname: outside },
      { name: 'one/secret', content: 'pwned' },
    ]);
    assert.equal(readFileSync(join(dest, outside, 'secret'), 'utf8'), 'pwned');
    await assert.rejects(
      apply([
        { name: 'loop1', type: 'symlink', linkname: 'loop2' },
        { name: 'loop2', type: 'symlink', linkname: 'loop1' },
        { name: 'loop1/x', content: 'x' },
      ]),
      unsafe('loop1/x'),
    );
  });

  test('a file entry replaces a symlink rather than writing through it', async () => {
    await apply([
      { name: 'link', type: 'symlink', linkname: join(outside, 'secret') },
      { name: 'link', content: 'pwned' },
    ]);
    assert.ok(lstatSync(join(dest, 'link')).isFile());
  });

  test('a directory entry replaces a symlink to a directory, and its metadata stays inside', async () => {
    await apply([
      { name: 'd', type: 'symlink', linkname: join(outside, 'dir') },
      { name: 'd/', type: 'directory', mode: 0o777, mtime: 1 },
      { name: 'd/inner', content: 'pwned' },
    ]);
    assert.ok(lstatSync(join(dest, 'd')).isDirectory());
    assert.equal(lstatSync(join(dest, 'd')).mode & 0o777, 0o777);
  });

  test('a directory later replaced by a symlink gets neither its deferred metadata nor its children outside', async () => {
    await apply([
      { name: 'd/', type: 'directory', mode: 0o777, mtime: 1 },
      { name: 'd', type: 'symlink', linkname: join(outside, 'dir') },
      { name: 'd/inner', content: 'pwned' },
    ]);
    assert.equal(readlinkSync(join(dest, 'd')), join(outside, 'dir'));
    assert.equal(readFileSync(join(dest, outside, 'dir/inner'), 'utf8'), 'pwned');
    assert.equal(statSync(join(outside, 'dir')).mode & 0o777, 0o755);
  });

  test('a hardlink to a path outside dest is refused', async () => {
    await assert.rejects(apply([{ name: 'h', type: 'link', linkname: '../outside/secret' }]), unsafe('h'));
    await assert.rejects(apply([{ name: 'h', type: 'link', linkname: join(outside, 'secret') }]), unsafe('h'));
    assert.equal(statSync(join(outside, 'secret')).nlink, 1);
  });

  test('a hardlink through a symlinked directory resolves inside dest', async () => {
    await assert.rejects(
      apply([
        { name: 'evil', type: 'symlink', linkname: outside },
        { name: 'h', type: 'link', linkname: 'evil/secret' },
      ]),
      (err: unknown) => err instanceof ArchiveInvalid && /does not exist/.test((err as Error).message),
    );
    assert.equal(statSync(join(outside, 'secret')).nlink, 1);
    assert.ok(!existsSync(join(dest, 'h')));
  });

  test('whiteouts cannot delete outside dest, through a symlink or with ".."', asRoot, async () => {
    await apply([
      { name: 'evil', type: 'symlink', linkname: outside },
      { name: 'evil/.wh.secret' },
      { name: 'evil/.wh..wh..opq' },
    ]);
    assert.ok(lstatSync(join(dest, 'evil')).isSymbolicLink());
    await assert.rejects(apply([{ name: 'sub/.wh...' }]), unsafe('sub/.wh...'));
    await assert.rejects(apply([{ name: '.wh..' }]), unsafe('.wh..'));
    // The same in overlay mode, where a whiteout is a device node and an opaque dir an xattr.
    await apply([{ name: 'evil2', type: 'symlink', linkname: join(outside, 'dir') }, { name: 'evil2/.wh.inner' }, { name: 'evil2/.wh..wh..opq' }], 'overlay');
    assert.ok(lstatSync(join(dest, outside, 'dir/inner')).isCharacterDevice());
    assert.deepEqual(Object.keys(readXattrs(join(outside, 'dir'))), []);
  });

  test('device nodes are made inside dest only', asRoot, async () => {
    await apply([
      { name: 'evil', type: 'symlink', linkname: outside },
      { name: 'evil/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'evil/fifo', type: 'fifo' },
    ]);
    assert.ok(lstatSync(join(dest, outside, 'null')).isCharacterDevice());
    assert.ok(lstatSync(join(dest, outside, 'fifo')).isFIFO());
  });

  test('an archive cannot set overlayfs xattrs of its own', asRoot, async () => {
    // tar-stream writes PAX records given as header.pax; made here through the crafted helper's escape hatch.
    const tar = await import('tar-stream');
    const pack = tar.default.pack();
    pack.entry({ name: 'd/', type: 'directory', pax: { 'trusted.overlay.opaque': 'y', 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.ok': 'fine' } } as never);
    pack.entry({ name: 'd/f', type: 'file' } as never, '');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    await applyLayer(bufferStream(Buffer.concat(chunks)), dest, { whiteouts: 'overlay' });
    assert.deepEqual(Object.keys(readXattrs(join(dest, 'd'))), ['user.ok']);
  });

  test('a failure part-way leaves earlier entries applied and nothing outside', async () => {
    await assert.rejects(apply([{ name: 'ok', content: 'fine' }, { name: '../escape', content: 'x' }, { name: 'never', content: 'x' }]), UnsafeArchiveEntry);
    assert.deepEqual(readdirSync(dest), ['ok']);
  });
});
