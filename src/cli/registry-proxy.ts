import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseDuration } from '../registry/server/config.js';
import type { ProxySetting, ProxySummary } from '../registry/server/admin.js';

// `kiln registry namespace set NS --proxy URL …`: the options that make a namespace a pull-through
// cache of another registry (src/registry/server/proxy.ts), and how the listing shows one.

export interface ProxyFlags {
  /** The upstream URL; false with --no-proxy. */
  proxy?: string | false;
  proxyUsername?: string;
  proxyPasswordStdin?: boolean;
  proxyTtl?: string;
}

export function withProxyOptions(c: Command): Command {
  return c
    .option('--proxy <url>', 'make the namespace a pull-through cache of the registry at http(s)://host[:port][/path]')
    .option('--no-proxy', 'stop the namespace being a pull-through cache (what it cached stays)')
    .option('--proxy-username <user>', 'sign in upstream as this user (with --proxy-password-stdin)')
    .option('--proxy-password-stdin', 'read the upstream password from standard input')
    .option('--proxy-ttl <duration>', 'serve a cached tag this long before asking upstream again (default 5m)');
}

/** The change the flags ask for: a setting, null (--no-proxy), or undefined (no proxy flag given). */
export async function proxyChange(o: ProxyFlags): Promise<ProxySetting | null | undefined> {
  const extras = o.proxyUsername !== undefined || o.proxyPasswordStdin || o.proxyTtl !== undefined;
  if (o.proxy === false) {
    if (extras) throw new UsageError('--no-proxy: give no --proxy-username, --proxy-password-stdin or --proxy-ttl with it');
    return null;
  }
  if (o.proxy === undefined) {
    if (extras) throw new UsageError('--proxy-username, --proxy-password-stdin and --proxy-ttl go with --proxy URL');
    return undefined;
  }
  if ((o.proxyUsername === undefined) !== !o.proxyPasswordStdin) throw new UsageError('give both --proxy-username and --proxy-password-stdin, or neither');
  let password: string | undefined;
  if (o.proxyPasswordStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (!password) throw new UsageError('--proxy-password-stdin: empty password on standard input');
  }
  return { url: o.proxy, username: o.proxyUsername, password, ttlSeconds: o.proxyTtl === undefined ? undefined : parseDuration(o.proxyTtl, '--proxy-ttl') };
}

/** The PROXY column of `namespace list`. */
export function describeProxy(p: ProxySummary | undefined): string {
  return p ? `${p.url}${p.credentials ? ' (credentials set)' : ''}` : '';
}
