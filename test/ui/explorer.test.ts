import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageAnalysis, LayerChange, LayerReport } from '../../src/inspect/index.js';
import { layerTrees, treeAt, visibleRows } from '../../src/ui/filetree.js';
import { keepInView, openView, parseKeys, press, renderScreen } from '../../src/ui/explorer.js';

// The layer explorer's pure parts, without a terminal: the tree as of a layer with that layer's
// changes marked, the rows a tree shows (folded, changes only), keys, and the screen as lines.

const file = (path: string, kind: LayerChange['kind'], size = 0): LayerChange => ({ path, kind, dir: false, size });
const dir = (path: string, kind: LayerChange['kind']): LayerChange => ({ path, kind, dir: true, size: 0 });

function layer(index: number, createdBy: string, changes: LayerChange[]): LayerReport {
  const files = changes.filter((c) => !c.dir);
  return {
    index,
    digest: `sha256:${String(index).repeat(64)}`,
    createdBy,
    size: files.reduce((n, c) => n + c.size, 0),
    compressedSize: 0,
    added: files.filter((c) => c.kind === 'added').length,
    changed: files.filter((c) => c.kind === 'changed').length,
    removed: files.filter((c) => c.kind === 'removed').length,
    changes,
  };
}

const layers = [
  layer(0, 'base rootfs', [dir('/bin', 'added'), file('/bin/sh', 'added', 1000), file('/bin/vi', 'added', 500), dir('/etc', 'added'), file('/etc/passwd', 'added', 100)]),
  // no /data directory entry: the tree makes the parent anyway
  layer(1, 'COPY new.txt /data/new.txt', [file('/data/new.txt', 'added', 6)]),
  layer(2, '/bin/sh -c #(nop) RUN rm /bin/vi && echo x >> /etc/passwd', [dir('/bin', 'changed'), file('/bin/vi', 'removed'), dir('/etc', 'changed'), file('/etc/passwd', 'changed', 102)]),
  // an opaque directory: what was below removed, one file written again
  layer(3, 'RUN rm -rf /etc && mkdir /etc && echo y > /etc/hosts', [file('/etc/passwd', 'removed'), dir('/etc', 'changed'), file('/etc/hosts', 'added', 2)]),
];

const analysis: ImageAnalysis = {
  image: 'layered:1',
  id: 'sha256:' + 'a'.repeat(64),
  totalSize: 1710,
  userSize: 110,
  efficiency: 0.5,
  wastedBytes: 702,
  userWastedPercent: 0.25,
  layers,
  inefficiencies: [],
};

const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
const width = (s: string) => Array.from(strip(s)).length;
const names = (rows: ReturnType<typeof visibleRows>) => rows.map((r) => `${r.node.mark ? { added: '+', changed: '~', removed: '-' }[r.node.mark] : ' '} ${r.prefix}${r.node.name}`);

test('the tree as of a layer holds every layer below it, marks only what that layer did, and keeps removed files with their old size', () => {
  const t0 = treeAt(layers, 0);
  assert.deepEqual(names(visibleRows(t0, new Set(), false)), ['+ ├── bin', '+ │   ├── sh', '+ │   └── vi', '+ └── etc', '+     └── passwd']);
  assert.equal(t0.size, 1600, 'a directory weighs what is below it');

  const t1 = treeAt(layers, 1);
  assert.deepEqual(names(visibleRows(t1, new Set(), false)), ['  ├── bin', '  │   ├── sh', '  │   └── vi', '~ ├── data', '+ │   └── new.txt', '  └── etc', '      └── passwd']);

  const rows2 = visibleRows(treeAt(layers, 2), new Set(), false);
  assert.deepEqual(names(rows2), ['~ ├── bin', '  │   ├── sh', '- │   └── vi', '  ├── data', '  │   └── new.txt', '~ └── etc', '~     └── passwd']);
  assert.equal(rows2.find((r) => r.node.path === '/bin/vi')!.node.size, 500, 'a removed file shows the bytes it still ships below');
  assert.equal(rows2.find((r) => r.node.path === '/etc/passwd')!.node.size, 102);

  // remembered states give the same trees, up and down
  const at = layerTrees(layers);
  assert.deepEqual(names(visibleRows(at(3), new Set(), false)), names(visibleRows(treeAt(layers, 3), new Set(), false)));
  assert.deepEqual(names(visibleRows(at(2), new Set(), false)), names(rows2));
  assert.deepEqual(names(visibleRows(at(1), new Set(), false)), names(visibleRows(t1, new Set(), false)));
  assert.deepEqual(names(visibleRows(at(2), new Set(), false)), names(rows2));
  assert.deepEqual(names(visibleRows(treeAt(layers, 3), new Set(), false)), ['  ├── bin', '  │   └── sh', '  ├── data', '  │   └── new.txt', '~ └── etc', '+     ├── hosts', '-     └── passwd']);
});

test('folded directories hide their contents; changes only keeps marked paths and the directories leading to them', () => {
  const t = treeAt(layers, 2);
  assert.deepEqual(names(visibleRows(t, new Set(['/bin']), false)), ['~ ├── bin', '  ├── data', '  │   └── new.txt', '~ └── etc', '~     └── passwd']);
  assert.equal(visibleRows(t, new Set(['/bin']), false)[0]!.collapsed, true);
  assert.deepEqual(names(visibleRows(t, new Set(), true)), ['~ ├── bin', '- │   └── vi', '~ └── etc', '~     └── passwd']);
});

test('keys from a raw terminal: arrows, vi keys, pages, tab, space/enter, c, q and Ctrl-C, several in one read', () => {
  assert.deepEqual(parseKeys('\x1b[A\x1b[Bjk\t \r\x1b[5~\x1b[6~cq\x03x'), ['up', 'down', 'down', 'up', 'tab', 'toggle', 'toggle', 'pageUp', 'pageDown', 'changedOnly', 'quit', 'quit']);
});

test('keys move between layers, into the tree, fold a directory, and q quits', () => {
  const v = openView(analysis);
  assert.equal(press(v, 'down', 20), true);
  assert.equal(press(v, 'down', 20), true);
  assert.equal(v.layer, 2);
  assert.equal(press(v, 'down', 20) && press(v, 'down', 20), true);
  assert.equal(v.layer, 3, 'the last layer stops the cursor');
  press(v, 'up', 20);
  press(v, 'toggle', 20);
  assert.equal(v.collapsed.size, 0, 'space folds only with the tree focused');
  assert.equal(v.rows[v.cursor]!.node.path, '/bin/vi', 'a new layer puts the cursor on its first change');
  press(v, 'tab', 20);
  assert.equal(v.focus, 'tree');
  press(v, 'up', 20);
  press(v, 'up', 20);
  press(v, 'toggle', 20);
  assert.deepEqual([...v.collapsed], ['/bin']);
  assert.equal(v.rows.length, 5);
  press(v, 'pageDown', 20);
  assert.equal(v.rows[v.cursor]!.node.path, '/etc/passwd');
  press(v, 'changedOnly', 20);
  assert.equal(v.rows[v.cursor]!.node.path, '/etc/passwd', 'the path under the cursor stays under it');
  assert.equal(press(v, 'quit', 20), false);
});

test('the screen is exactly width × height, layers left, the tree right, the summary at the bottom', () => {
  const v = openView(analysis);
  press(v, 'down', 12);
  press(v, 'down', 12);
  const lines = renderScreen(v, 80, 12);
  assert.equal(lines.length, 12);
  for (const l of lines) assert.equal(width(l), 80, JSON.stringify(strip(l)));
  const text = lines.map(strip);
  assert.match(text[0]!, /^ Layers +│ Layer 2 contents \(\+0 ~1 -1\)/);
  assert.match(text[1]!, /^ {3}0 +1\.6 kB {2}base rootfs +│~ +1\.5 kB {2}├── ▾ bin\/ *$/);
  assert.match(text[3]!, /^▶ {2}2 +102 B {2}RUN rm \/bin\/vi &…│- +500 B {2}│ {3}└── vi *$/, 'docker\'s #(nop) prefix is left out');
  assert.match(text[9]!, /^ layered:1 {2}total 1\.7 kB {2}efficiency 50\.00 % {2}wasted 702 B {2}user wasted 25\.00 %/);
  assert.match(text[10]!, /^ layer 2 2{12} {2}102 B {2}\+0 ~1 -1 {2}RUN rm/);
  assert.match(text[11]!, /q quit/);
  // marks in colour: removed red, changed yellow; the selected layer in reverse video
  assert.match(lines[3]!, /^\x1b\[7m▶/);
  assert.match(lines[3]!, /\x1b\[31m- +500 B/);
  assert.match(lines[1]!, /\x1b\[33m~/);
});

test('a narrow, short screen cuts long lines with … and scrolls the tree to the cursor', () => {
  const v = openView(analysis);
  press(v, 'tab', 7);
  for (let i = 0; i < 3; i++) press(v, 'down', 7);
  const lines = renderScreen(v, 40, 7).map(strip);
  assert.equal(lines.length, 7);
  for (const l of lines) assert.equal(Array.from(l).length, 40);
  assert.match(lines[0]!, /│ Layer 0 contents \(\+3 ~0 …$/, 'cut to its pane, with …');
  // three body rows: the cursor (row 3, /etc) is the last of them, /bin scrolled away
  assert.match(lines[3]!, /└── ▾ etc\/ *$/);
  assert.match(lines[1]!, /├── sh *$/);
  assert.doesNotMatch(lines.join('\n'), /bin\//);
  // after a resize to a taller screen the view scrolls back as far as it can
  keepInView(v, 30);
  assert.equal(v.top, 0);
  assert.equal(renderScreen(v, 40, 3).length, 3, 'a tiny terminal keeps the summary lines');
});

test('exploreImage enters the alternate screen, quits on q, and gives the terminal back — also when drawing fails', async () => {
  const { PassThrough } = await import('node:stream');
  const { exploreImage } = await import('../../src/ui/explorer.js');
  const term = () => {
    const input = new PassThrough() as unknown as NodeJS.ReadStream;
    const output = Object.assign(new PassThrough(), { columns: 60, rows: 10 }) as unknown as NodeJS.WriteStream;
    let written = '';
    output.on('data', (c: Buffer) => (written += c.toString()));
    return { input, output, written: () => written };
  };
  const handlers = process.listenerCount('SIGTERM');
  const t = term();
  const shown = exploreImage(analysis, t);
  t.input.write('j');
  t.input.write('q');
  await shown;
  const w = t.written();
  assert.ok(w.startsWith('\x1b[?1049h\x1b[?25l'), 'alternate screen, cursor hidden');
  assert.match(strip(w), /▶ {2}1 /, 'j selected layer 1');
  assert.ok(w.endsWith('\x1b[0m\x1b[?25h\x1b[?1049l'), 'attributes off, cursor shown, main screen back');
  assert.equal(process.listenerCount('SIGTERM'), handlers, 'no signal handler left behind');

  const broken = term();
  // a layer without its history text makes drawing throw
  const bad = { ...analysis, layers: [...layers, { ...layer(4, '', []), createdBy: undefined as unknown as string }] };
  await assert.rejects(exploreImage(bad, broken), TypeError);
  assert.ok(broken.written().startsWith('\x1b[?1049h'));
  assert.ok(broken.written().endsWith('\x1b[0m\x1b[?25h\x1b[?1049l'), 'the terminal is given back before the error surfaces');
});
