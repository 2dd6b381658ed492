import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Registry } from '../registry.js';
import type { Ctx } from '../http.js';
import { RegistryError } from '../errors.js';

// The web UI's pages (issue 20): static files `npm run build` makes from web/ (scripts/build-web.mjs)
// into dist/web/, served by the registry itself; nothing comes from elsewhere at run time.
//   /                  the single page (index.html); the page routes itself under /ui/
//   /ui/assets/FILE    its script and style sheet
//   /ui/...            index.html again, so a page's address can be reloaded or shared
// Every answer carries a Content-Security-Policy that allows only the registry's own script and
// styles (no inline script or style, no eval, no framing), and nosniff.

export const ContentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders = {
  'Content-Security-Policy': ContentSecurityPolicy,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** dist/web beside the bundle (dist/bin) or the compiled module (dist/src/registry/server/routes). */
function webDir(): string | undefined {
  for (const rel of ['../web/', '../../../../web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir + 'index.html')) return dir;
  }
  return undefined;
}

let assets: Map<string, Asset> | undefined;
function loadAssets(): Map<string, Asset> {
  if (assets) return assets;
  const out = new Map<string, Asset>();
  const dir = webDir();
  if (dir) {
    const add = (name: string, file: string) => {
      const body = readFileSync(file);
      const ext = name.slice(name.lastIndexOf('.'));
      out.set(name, { body, type: types[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"` });
    };
    add('index.html', dir + 'index.html');
    if (existsSync(dir + 'assets')) for (const f of readdirSync(dir + 'assets')) add(`assets/${f}`, `${dir}assets/${f}`);
  }
  return (assets = out);
}

/** Whether the path is the UI's: "/" or below "/ui/". */
export function isUiPath(path: string): boolean {
  return path === '/' || path === '/ui' || path.startsWith('/ui/');
}

export async function ui(_reg: Registry, ctx: Ctx): Promise<void> {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new RegistryError('method-not-allowed', `${ctx.method} is not allowed on ${ctx.path.slice(0, 200)}`, undefined, { Allow: 'GET, HEAD' });
  const files = loadAssets();
  const name = ctx.path.startsWith('/ui/assets/') ? ctx.path.slice(4) : 'index.html';
  const a = files.get(name);
  if (!a) {
    if (name === 'index.html') throw new RegistryError('not-found', 'the web UI is not built: run npm run build (scripts/build-web.mjs writes dist/web/)');
    throw new RegistryError('not-found', `no such file: ${ctx.path.slice(0, 200)}`);
  }
  const headers = { ...securityHeaders, 'Content-Type': a.type, 'Cache-Control': 'no-cache', ETag: a.etag };
  if (ctx.req.headers['if-none-match'] === a.etag) {
    ctx.res.writeHead(304, headers);
    ctx.res.end();
    return;
  }
  ctx.res.writeHead(200, { ...headers, 'Content-Length': a.body.length });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : a.body);
  if (ctx.method !== 'HEAD') ctx.bytesOut += a.body.length;
}
