import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { UsageError } from '../../../errors.js';

// Where a webhook may send: a namespace administrator names the URL, the registry makes the
// request, so a URL must not turn the registry into a way to reach what only it can reach (SSRF):
// the cloud metadata service above all (169.254.169.254 answers credentials on AWS, GCP, Azure).
// Checked when the hook is added, and again at each delivery on the addresses the name resolves to
// then, with the connection made to the address that was checked (no second lookup to rebind).

export interface AddressRules {
  allowLoopback: boolean;
  allowPrivateNetworks: boolean;
  /** Addresses or CIDR ranges allowed whatever the other rules say. */
  allow: string[];
}

type Range = [string, number, 'ipv4' | 'ipv6'];

const ranges = (list: Range[]): BlockList => {
  const b = new BlockList();
  for (const [net, prefix, type] of list) b.addSubnet(net, prefix, type);
  return b;
};

// IANA special-purpose registries (RFC 6890 and its updates).
const metadata = ranges([['169.254.169.254', 32, 'ipv4'], ['fd00:ec2::254', 128, 'ipv6']]);
const linkLocal = ranges([['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']]);
const loopback = ranges([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]);
const privateNets = ranges([['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['fc00::', 7, 'ipv6']]);
/** Never a receiver: "this network", multicast, broadcast, unspecified. */
const unusable = ranges([['0.0.0.0', 8, 'ipv4'], ['224.0.0.0', 4, 'ipv4'], ['255.255.255.255', 32, 'ipv4'], ['::', 128, 'ipv6'], ['ff00::', 8, 'ipv6']]);

/** An allow-list entry ("10.1.2.3", "10.0.0.0/8", "fd00::/8"); throws naming `what`. */
function addAllowed(list: BlockList, entry: string, what: string): void {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry.trim());
  const family = m ? isIP(m[1]!) : 0;
  const prefix = m?.[2] === undefined ? (family === 6 ? 128 : 32) : Number(m[2]);
  if (!m || family === 0 || prefix > (family === 6 ? 128 : 32)) throw new UsageError(`${what}: "${entry}" is not an address or a CIDR range (10.0.0.0/8, fd00::/8)`);
  list.addSubnet(m[1]!, prefix, family === 6 ? 'ipv6' : 'ipv4');
}

export interface AddressPolicy {
  /** Why the address is refused, or undefined when a delivery may go there. */
  refusal(address: string): string | undefined;
}

export function addressPolicy(rules: AddressRules): AddressPolicy {
  const allowed = new BlockList();
  rules.allow.forEach((e, i) => addAllowed(allowed, e, `webhooks.allow[${i}]`));
  return {
    refusal(raw) {
      const address = unmapped(raw);
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (allowed.check(address, type)) return undefined;
      if (metadata.check(address, type)) return `${address} is a cloud metadata address (allow it with webhooks.allow)`;
      if (linkLocal.check(address, type)) return `${address} is a link-local address (allow it with webhooks.allow)`;
      if (unusable.check(address, type)) return `${address} is not a unicast address`;
      if (loopback.check(address, type)) return rules.allowLoopback ? undefined : `${address} is a loopback address (webhooks.allowLoopback is false)`;
      if (privateNets.check(address, type)) return rules.allowPrivateNetworks ? undefined : `${address} is on a private network (set webhooks.allowPrivateNetworks or list it in webhooks.allow)`;
      return undefined;
    },
  };
}

/** ::ffff:169.254.169.254 (or ::ffff:a9fe:a9fe, as URL writes it) is the IPv4 address. */
function unmapped(address: string): string {
  const a = address.toLowerCase();
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) return dotted[1]!;
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return address;
}

/** The URL as a person gave it, checked for its shape: http or https, a host, no credentials. */
export function parseWebhookUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`webhook URL "${raw.slice(0, 300)}": not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`webhook URL "${raw.slice(0, 300)}": only http and https are allowed, not ${url.protocol.replace(/:$/, '')}`);
  if (!url.hostname) throw new UsageError(`webhook URL "${raw.slice(0, 300)}": no host`);
  if (url.username || url.password) throw new UsageError(`webhook URL "${raw.slice(0, 300)}": no credentials in the URL (receivers check the X-Kiln-Signature header)`);
  if (raw.length > 2048) throw new UsageError('webhook URL: at most 2048 characters');
  return url;
}

/** The host of a URL as an address when it is one ([::1] → ::1), else undefined. */
function literal(url: URL): string | undefined {
  const h = url.hostname.replace(/^\[|\]$/g, '');
  return isIP(h) ? h : undefined;
}

type Lookup = (host: string, cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;
const lookupAll: Lookup = (host, cb) => dnsLookup(host, { all: true }, cb);

/** The addresses a delivery to `url` would reach, each checked; throws naming the URL. */
export async function checkDestination(url: URL, policy: AddressPolicy, lookup: Lookup = lookupAll): Promise<string[]> {
  const ip = literal(url);
  const addresses = ip
    ? [ip]
    : await new Promise<string[]>((resolve, reject) =>
        lookup(url.hostname, (err, list) => (err ? reject(new UsageError(`webhook URL "${url.href}": cannot resolve ${url.hostname} (${err.code ?? err.message})`)) : resolve(list.map((a) => a.address)))),
      );
  for (const a of addresses) {
    const why = policy.refusal(a);
    if (why) throw new UsageError(`webhook URL "${url.href}": ${ip ? '' : `${url.hostname} resolves to `}${why}`);
  }
  return addresses;
}

/**
 * A `lookup` for http.request that refuses a name resolving to an address the policy refuses, and
 * hands the connection the addresses it checked (Node 20 asks for all of them: happy eyeballs).
 */
export function guardedLookup(policy: AddressPolicy) {
  return (host: string, options: { all?: boolean; family?: number }, cb: (err: Error | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(host, { all: true, family: options.family ?? 0 }, (err, list) => {
      if (err) return cb(err, '');
      for (const a of list) {
        const why = policy.refusal(a.address);
        if (why) return cb(new Error(`${host} resolves to ${why}`), '');
      }
      if (options.all) cb(null, list);
      else cb(null, list[0]!.address, list[0]!.family);
    });
  };
}

export { literal as literalAddress };
