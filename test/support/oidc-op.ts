// A real OpenID Provider for the registry's tests (issue 21): panva's certified `oidc-provider`,
// run as a process of its own (test/support/oidc.ts starts it with a JSON file naming the port,
// the clients and the users, and stops it by PID). Its login page checks each user's password; the
// consent step is granted at once. `groups` is a scope and a claim. Two test-only endpoints:
//   POST /_test/disable?user=NAME   the account is gone: refresh grants for it fail (invalid_grant)
//   POST /_test/enable?user=NAME    it is back
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

interface OpUser {
  password: string;
  /** The preferred_username claim; default the user's key. */
  username?: string;
  groups: string[];
}
interface OpConfig {
  port: number;
  clients: { client_id: string; client_secret: string; redirect_uris: string[] }[];
  users: Record<string, OpUser>;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as OpConfig;
const issuer = `http://127.0.0.1:${cfg.port}`;
const disabled = new Set<string>();

const provider = new Provider(issuer, {
  clients: cfg.clients.map((c) => ({ ...c, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' })),
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['kiln-test-op-cookie-key'] },
  pkce: { required: () => true },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600, RefreshToken: 3600 },
  async findAccount(_ctx, sub) {
    const u = cfg.users[sub];
    if (!u || disabled.has(sub)) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: u.username ?? sub, name: u.username ?? sub, email: `${sub}@example.test`, groups: u.groups };
      },
    };
  },
});

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (uid: string, error = '') => `<!doctype html><html><head><title>Test OP sign-in</title></head><body>
<h1>Test OP</h1>${error ? `<p class="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label for="login">Username</label><input id="login" name="login" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></body></html>`;

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, post: boolean): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name === 'login') {
    if (!post) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(uid));
      return;
    }
    const f = await form(req);
    const login = f.get('login') ?? '';
    const u = cfg.users[login];
    if (!u || u.password !== f.get('password') || disabled.has(login)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(uid, 'Wrong username or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  // consent: grant what was asked.
  const { grantId, session, params } = details;
  const grant = grantId ? (await provider.Grant.find(grantId))! : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
  const d = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

const handle = provider.callback();
createServer((req, res) => {
  const url = new URL(req.url ?? '/', issuer);
  const control = /^\/_test\/(disable|enable)$/.exec(url.pathname);
  if (control && req.method === 'POST') {
    const user = url.searchParams.get('user') ?? '';
    if (control[1] === 'disable') disabled.add(user);
    else disabled.delete(user);
    res.writeHead(204).end();
    return;
  }
  const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(url.pathname);
  if (m) {
    interaction(req, res, m[1]!, req.method === 'POST').catch((e: Error) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' }).end(`interaction failed: ${e.message}`);
    });
    return;
  }
  void handle(req, res);
}).listen(cfg.port, '127.0.0.1', () => console.log(`listening ${issuer}`));
