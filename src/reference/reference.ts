import { InvalidReference } from '../errors.js';

// Image references with the grammar and normalisation of distribution/reference (used by docker):
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [domain "/"] path-component ("/" path-component)*
// "busybox" normalises to docker.io/library/busybox:latest.

export const DefaultDomain = 'docker.io';
const LegacyDefaultDomain = 'index.docker.io';
const OfficialRepoPrefix = 'library/';

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainRe = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|${ipv6})(?::[0-9]+)?$`);
const pathComponentRe = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const tagRe = /^[\w][\w.-]{0,127}$/;
const digestRe = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const NameTotalLengthMax = 255;

export interface Reference {
  /** Registry host, with port when given: "docker.io", "localhost:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox", "a/b". */
  path: string;
  tag?: string;
  digest?: string;
}

/** Parse and normalise; throws InvalidReference saying why. Adds no default tag. */
export function parseReference(input: string): Reference {
  const fail = (why: string): never => {
    throw new InvalidReference(`invalid reference "${input}": ${why}`);
  };
  if (input === '') fail('empty reference');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestRe.test(digest)) fail(`"${digest}" is not a valid digest`);
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest)) fail('sha256 digest must be 64 lower-case hex characters');
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagRe.test(tag)) fail(`"${tag}" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (rest === '') fail('missing repository name');
  if (rest.length > NameTotalLengthMax) fail(`repository name longer than ${NameTotalLengthMax} characters`);

  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash < 0 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DefaultDomain;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
    if (!domainRe.test(domain)) fail(`"${domain}" is not a valid registry host`);
  }
  if (domain === LegacyDefaultDomain) domain = DefaultDomain;
  if (domain === DefaultDomain && !path.includes('/')) path = OfficialRepoPrefix + path;
  if (path === '') fail('missing repository name');
  for (const comp of path.split('/')) {
    if (comp !== comp.toLowerCase()) fail('repository name must be lowercase');
    if (!pathComponentRe.test(comp)) fail(`"${comp}" is not a valid path component (lower-case letters, digits and single separators . _ __ -)`);
  }
  return { domain, path, tag, digest };
}

/** Like parseReference, and adds ":latest" when neither tag nor digest is given (docker's TagNameOnly). */
export function parseNamed(input: string): Reference {
  const ref = parseReference(input);
  if (!ref.tag && !ref.digest) ref.tag = 'latest';
  return ref;
}

export function repositoryOf(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** Fully qualified string: docker.io/library/busybox:latest, with @digest when present. */
export function formatReference(ref: Reference): string {
  return repositoryOf(ref) + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** The short form docker prints: busybox, user/app, localhost:5000/a/b. */
export function familiarRepository(ref: Reference): string {
  if (ref.domain !== DefaultDomain) return repositoryOf(ref);
  return ref.path.startsWith(OfficialRepoPrefix) ? ref.path.slice(OfficialRepoPrefix.length) : ref.path;
}

export function familiarString(ref: Reference): string {
  return familiarRepository(ref) + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** Normalise a user-typed image name to its canonical tagged form. */
export function normalize(input: string): string {
  return formatReference(parseNamed(input));
}
