import { constants } from 'node:os';
import type { ImageAnalysis } from '../inspect/index.js';
import { humanBytes, layerInstruction } from '../inspect/index.js';
import { layerTrees, visibleRows, type FileNode, type Mark, type TreeRow } from './filetree.js';

// The terminal layer explorer of `kiln analyze` (what dive shows): the layers on the left, the
// image's file tree as of the selected layer on the right with that layer's changes marked, the
// image's waste at the bottom. Plain ANSI escape sequences and the terminal's raw mode: a screen
// this simple needs no framework. The state, the keys and the rendering to lines are pure (tested
// without a terminal); exploreImage() is the only part that touches one.

export type Focus = 'layers' | 'tree';

export interface ExplorerView {
  analysis: ImageAnalysis;
  layer: number;
  focus: Focus;
  /** Index of the tree row under the cursor, and of the first tree row on screen. */
  cursor: number;
  top: number;
  /** First layer row on screen. */
  layerTop: number;
  collapsed: Set<string>;
  changedOnly: boolean;
  tree: FileNode;
  rows: TreeRow[];
  treeAt: (layer: number) => FileNode;
}

/** A view of `analysis`, whose layers must carry their changes (analyzeImage with `changes: true`). */
export function openView(analysis: ImageAnalysis): ExplorerView {
  const treeAt = layerTrees(analysis.layers);
  const tree = treeAt(0);
  const view: ExplorerView = { analysis, layer: 0, focus: 'layers', cursor: 0, top: 0, layerTop: 0, collapsed: new Set(), changedOnly: false, tree, rows: [], treeAt };
  view.rows = visibleRows(tree, view.collapsed, false);
  return view;
}

export type Key = 'up' | 'down' | 'pageUp' | 'pageDown' | 'home' | 'end' | 'tab' | 'toggle' | 'changedOnly' | 'quit';

/** The keys in one read from a raw-mode terminal (several may arrive together). */
export function parseKeys(data: string): Key[] {
  const keys: Key[] = [];
  for (const m of data.matchAll(/\x1b\[[0-9;]*[~A-Za-z]|\x1bO[A-Za-z]|[\s\S]/g)) {
    const k = keyOf(m[0]);
    if (k) keys.push(k);
  }
  return keys;
}

function keyOf(s: string): Key | undefined {
  switch (s) {
    case '\x1b[A':
    case '\x1bOA':
    case 'k':
      return 'up';
    case '\x1b[B':
    case '\x1bOB':
    case 'j':
      return 'down';
    case '\x1b[5~':
      return 'pageUp';
    case '\x1b[6~':
      return 'pageDown';
    case '\x1b[H':
    case '\x1b[1~':
    case '\x1bOH':
      return 'home';
    case '\x1b[F':
    case '\x1b[4~':
    case '\x1bOF':
      return 'end';
    case '\t':
    case '\x1b[Z':
      return 'tab';
    case ' ':
    case '\r':
    case '\n':
      return 'toggle';
    case 'c':
      return 'changedOnly';
    case 'q':
    case '\x03': // Ctrl-C: raw mode delivers it as a byte, not as SIGINT
      return 'quit';
    default:
      return undefined;
  }
}

/** Apply one key; false when it quits. `height` is the terminal's, for page moves and scrolling. */
export function press(view: ExplorerView, key: Key, height: number): boolean {
  const page = Math.max(1, bodyHeight(height));
  const layers = view.analysis.layers.length;
  switch (key) {
    case 'quit':
      return false;
    case 'tab':
      view.focus = view.focus === 'layers' ? 'tree' : 'layers';
      break;
    case 'changedOnly':
      view.changedOnly = !view.changedOnly;
      refreshRows(view);
      break;
    case 'toggle': {
      const row = view.rows[view.cursor];
      if (view.focus !== 'tree' || !row?.node.dir) break;
      if (view.collapsed.has(row.node.path)) view.collapsed.delete(row.node.path);
      else view.collapsed.add(row.node.path);
      refreshRows(view);
      break;
    }
    default: {
      const step = { up: -1, down: 1, pageUp: -page, pageDown: page, home: -Infinity, end: Infinity }[key];
      if (view.focus === 'layers') selectLayer(view, clamp(view.layer + step, 0, layers - 1));
      else view.cursor = clamp(view.cursor + step, 0, view.rows.length - 1);
    }
  }
  keepInView(view, height);
  return true;
}

/** Scroll both panes so their cursors are on a screen `height` rows high. */
export function keepInView(view: ExplorerView, height: number): void {
  const page = Math.max(1, bodyHeight(height));
  view.top = scrolled(view.top, view.cursor, page, view.rows.length);
  view.layerTop = scrolled(view.layerTop, view.layer, page, view.analysis.layers.length);
}

function selectLayer(view: ExplorerView, layer: number): void {
  if (layer === view.layer) return;
  view.layer = layer;
  view.tree = view.treeAt(layer);
  view.rows = visibleRows(view.tree, view.collapsed, view.changedOnly);
  // The cursor goes to the layer's first change (a file rather than the directories above it), so
  // what the layer did is on screen even in a tree of thousands of files.
  const first = view.rows.findIndex((r) => r.node.mark && !r.node.dir);
  view.cursor = first >= 0 ? first : Math.max(0, view.rows.findIndex((r) => r.node.mark));
}

function refreshRows(view: ExplorerView, keep = view.rows[view.cursor]?.node.path): void {
  view.rows = visibleRows(view.tree, view.collapsed, view.changedOnly);
  const at = keep === undefined ? -1 : view.rows.findIndex((r) => r.node.path === keep);
  view.cursor = at >= 0 ? at : clamp(view.cursor, 0, view.rows.length - 1);
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}

/** The first row to show so that `cursor` is on screen. */
function scrolled(top: number, cursor: number, visible: number, total: number): number {
  let t = clamp(top, 0, Math.max(0, total - visible));
  if (cursor < t) t = cursor;
  if (cursor >= t + visible) t = cursor - visible + 1;
  return Math.max(0, t);
}

/** Rows between the title line and the three lines of the summary. */
function bodyHeight(height: number): number {
  return height - 4;
}

const Colour: Record<Mark, string> = { added: '32', changed: '33', removed: '31' };
const Sign: Record<Mark, string> = { added: '+', changed: '~', removed: '-' };

/**
 * The screen as `height` lines of exactly `width` columns (escape sequences aside). Each line is
 * cut to its column before it is coloured, so colours never count towards widths.
 */
export function renderScreen(view: ExplorerView, width: number, height: number, colour = true): string[] {
  const paint = (text: string, codes: string | undefined) => (colour && codes ? `\x1b[${codes}m${text}\x1b[0m` : text);
  const a = view.analysis;
  const leftWidth = width < 48 ? Math.floor(width / 3) : clamp(Math.floor(width * 0.42), 24, 72);
  const rightWidth = Math.max(0, width - leftWidth - 1);
  const body = bodyHeight(height);
  const top = scrolled(view.top, view.cursor, Math.max(1, body), view.rows.length);
  const layerTop = scrolled(view.layerTop, view.layer, Math.max(1, body), a.layers.length);
  const sel = a.layers[view.layer];

  const lines: string[] = [];
  const title = (text: string, w: number, focused: boolean) => paint(fit(text, w), focused ? '1;7' : '1');
  const marks = sel ? ` (+${sel.added} ~${sel.changed} -${sel.removed})` : '';
  lines.push(
    title(' Layers', leftWidth, view.focus === 'layers') +
      '│' +
      title(` Layer ${view.layer} contents${marks}${view.changedOnly ? ' [changes only]' : ''}`, rightWidth, view.focus === 'tree'),
  );
  for (let r = 0; r < body; r++) {
    const li = layerTop + r;
    let left = ' '.repeat(leftWidth);
    const l = a.layers[li];
    if (l) {
      const chosen = li === view.layer;
      const text = fit(`${chosen ? '▶' : ' '}${String(l.index).padStart(3)} ${humanBytes(l.size).padStart(9)}  ${layerInstruction(l.createdBy)}`, leftWidth);
      left = chosen ? paint(text, view.focus === 'layers' ? '7' : '1') : text;
    }
    const ti = top + r;
    let right = ' '.repeat(rightWidth);
    const row = view.rows[ti];
    if (row) {
      const n = row.node;
      const name = n.dir ? `${row.collapsed ? '▸' : '▾'} ${n.name}/` : n.name;
      const text = fit(`${n.mark ? Sign[n.mark] : ' '} ${humanBytes(n.size).padStart(9)}  ${row.prefix}${name}`, rightWidth);
      const codes = [ti === view.cursor && view.focus === 'tree' ? '7' : '', n.mark ? Colour[n.mark] : ''].filter(Boolean).join(';');
      right = paint(text, codes || undefined);
    } else if (r === 0 && view.rows.length === 0) right = fit(view.changedOnly ? '  (this layer changes no file)' : '  (empty)', rightWidth);
    lines.push(left + '│' + right);
  }
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  lines.push(paint(fit(` ${a.image}  total ${humanBytes(a.totalSize)}  efficiency ${pct(a.efficiency)}  wasted ${humanBytes(a.wastedBytes)}  user wasted ${pct(a.userWastedPercent)}`, width), '1;7'));
  lines.push(fit(sel ? ` layer ${sel.index} ${sel.digest.slice(7, 19)}  ${humanBytes(sel.size)}  +${sel.added} ~${sel.changed} -${sel.removed}  ${layerInstruction(sel.createdBy)}` : '', width));
  lines.push(paint(fit(' ↑↓/jk move · Tab focus · Space/Enter fold · PgUp/PgDn · c changes only · q quit', width), '2'));
  // A terminal too short for the body keeps the lines that matter most: the summary at the bottom.
  return lines.slice(Math.max(0, lines.length - height));
}

/** `s` cut (with …) or padded to exactly `w` columns; one column per code point. */
function fit(s: string, w: number): string {
  if (w <= 0) return '';
  const chars = Array.from(s);
  if (chars.length > w) return chars.slice(0, w - 1).join('') + '…';
  return s + ' '.repeat(w - chars.length);
}

export interface Terminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
}

/**
 * Show the explorer full-screen until q or Ctrl-C. The terminal is given back as it was (main
 * screen, cooked mode, cursor shown) on every way out: a key, SIGTERM or SIGHUP, an error.
 */
export function exploreImage(analysis: ImageAnalysis, term: Terminal = { input: process.stdin, output: process.stdout }): Promise<void> {
  const { input, output } = term;
  const view = openView(analysis);
  const size = () => ({ width: output.columns || 80, height: output.rows || 24 });
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const draw = (clear = false) => {
      const { width, height } = size();
      output.write((clear ? '\x1b[2J' : '') + '\x1b[H' + renderScreen(view, width, height).join('\r\n'));
    };
    const restore = () => {
      input.off('data', onData);
      output.off('resize', onResize);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      process.off('exit', restoreTerminal);
      restoreTerminal();
      input.pause();
    };
    const restoreTerminal = () => {
      if (done) return;
      done = true;
      if (input.isTTY) input.setRawMode(false);
      // Attributes off, cursor shown, main screen back (xterm's alternate screen, mode 1049).
      output.write('\x1b[0m\x1b[?25h\x1b[?1049l');
    };
    const finish = (error?: unknown) => {
      restore();
      if (error) reject(error);
      else resolve();
    };
    const onData = (data: Buffer) => {
      try {
        const { height } = size();
        for (const key of parseKeys(data.toString('utf8'))) {
          if (!press(view, key, height)) return finish();
        }
        draw();
      } catch (e) {
        finish(e);
      }
    };
    const onResize = () => {
      try {
        keepInView(view, size().height);
        draw(true);
      } catch (e) {
        finish(e);
      }
    };
    const onSignal = (signal: NodeJS.Signals) => {
      restore();
      // The status a shell gives a process killed by the signal (re-raising it is not reliable
      // once Node has installed its handler).
      process.exit(128 + (constants.signals[signal] ?? 15));
    };
    try {
      if (input.isTTY) input.setRawMode(true);
      process.on('exit', restoreTerminal);
      process.once('SIGTERM', onSignal);
      process.once('SIGHUP', onSignal);
      output.write('\x1b[?1049h\x1b[?25l');
      input.on('data', onData);
      output.on('resize', onResize);
      input.resume();
      draw(true);
    } catch (e) {
      finish(e);
    }
  });
}
