import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import picomatch from 'picomatch';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { PolicyInvalid } from './errors.js';
import { parseTrustedRoot, type TrustedRoot } from './bundle.js';
import { describeIdentity, type CertificateIdentity } from './identity.js';
import { keyHint, readPublicKey } from './keys.js';
import { certificatesFromPem } from './x509.js';

// kiln's client-side trust policy (policy.yaml): which images kiln pull, kiln build (FROM images
// it pulls) and kiln run take. Rules match the image's repository, registry host included
// (docker.io/library/busybox), by doublestar glob; the first rule that matches decides:
//
//   rules:
//     - match: registry.example.com/team/**
//       require:
//         keys: [team.pub]              # paths, relative to this file
//         certificates: [ca.pem]        # Notation: a chain to one of these
//     - match: ghcr.io/team/**
//       require:
//         keyless:                      # Fulcio certificates (cosign sign without a key)
//           - issuer: https://token.actions.githubusercontent.com
//             identityRegexp: ^https://github\.com/team/
//         trustedRoot: trusted_root.json
//     - match: docker.io/library/*
//       accept: anything
//     - match: "**"
//       reject: true
//
// An image no rule matches is accepted (as without a policy file). Unknown keys are errors.

export interface PolicyRule {
  /** 1-based, for messages. */
  index: number;
  line: number;
  match: string;
  decision: 'accept' | 'reject' | 'require';
  keys: KeyObject[];
  certificates: X509Certificate[];
  keyless?: { identities: CertificateIdentity[]; root: TrustedRoot };
}

export interface ImagePolicy {
  file: string;
  rules: PolicyRule[];
}

/** --policy FILE, else $KILN_POLICY, else ~/.config/kiln/policy.yaml ($XDG_CONFIG_HOME) when it exists. */
export function policyPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { file: string; required: boolean } | undefined {
  if (flag) return { file: flag, required: true };
  if (env.KILN_POLICY) return { file: env.KILN_POLICY, required: true };
  const file = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'kiln', 'policy.yaml');
  return existsSync(file) ? { file, required: false } : undefined;
}

export async function loadImagePolicy(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ImagePolicy | undefined> {
  const where = policyPath(flag, env);
  if (!where) return undefined;
  let text: string;
  try {
    text = await readFile(where.file, 'utf8');
  } catch (e) {
    throw new PolicyInvalid(`${where.file}: cannot read the policy file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseImagePolicy(text, where.file);
}

export async function parseImagePolicy(text: string, file: string): Promise<ImagePolicy> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) throw new PolicyInvalid(`${file}:${doc.errors[0]!.linePos?.[0].line ?? 1}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const lineOf = (n: Node | null | undefined) => (n?.range ? lines.linePos(n.range[0]).line : 1);
  const fail = (n: Node | null | undefined, why: string): never => {
    throw new PolicyInvalid(`${file}:${lineOf(n)}: ${why}`);
  };
  const root = doc.contents;
  if (!isMap(root)) fail(root, 'expected a mapping with a "rules" list');
  const top = root as import('yaml').YAMLMap;
  for (const item of top.items) {
    const k = isScalar(item.key) ? String(item.key.value) : '?';
    if (k !== 'rules') fail(item.key as Node, `unknown key "${k}" (known: rules)`);
  }
  const list = top.get('rules', true) as Node | undefined;
  if (list === undefined) return { file, rules: [] };
  if (!isSeq(list)) fail(list, 'rules: expected a list of rules');
  const base = dirname(resolve(file));
  const rules: PolicyRule[] = [];
  for (const [i, node] of (list as import('yaml').YAMLSeq).items.entries()) {
    const at = `rules[${i}]`;
    if (!isMap(node)) fail(node as Node, `${at}: expected a mapping with match and one of require, accept, reject`);
    const map = node as import('yaml').YAMLMap;
    const fields = new Map<string, Node>();
    for (const item of map.items) {
      const k = isScalar(item.key) ? String(item.key.value) : '?';
      if (!['match', 'require', 'accept', 'reject'].includes(k)) fail(item.key as Node, `${at}: unknown key "${k}" (known: match, require, accept, reject)`);
      fields.set(k, item.value as Node);
    }
    const match = fields.get('match');
    if (!isScalar(match) || typeof match.value !== 'string' || match.value === '') fail(match ?? map, `${at}.match: expected a pattern such as registry.example.com/team/** or docker.io/library/*`);
    const pattern = (match as import('yaml').Scalar<string>).value;
    try {
      picomatch.makeRe(pattern, { dot: true, strictBrackets: true });
    } catch (e) {
      fail(match, `${at}.match: "${pattern}" is not a valid pattern: ${(e as Error).message}`);
    }
    const decisions = ['require', 'accept', 'reject'].filter((d) => fields.has(d));
    if (decisions.length !== 1) fail(map, `${at}: give exactly one of require, accept: anything, reject: true`);
    const rule: PolicyRule = { index: i + 1, line: lineOf(map), match: pattern, decision: decisions[0] as PolicyRule['decision'], keys: [], certificates: [] };
    if (rule.decision === 'accept') {
      const v = fields.get('accept');
      if (!isScalar(v) || v.value !== 'anything') fail(v, `${at}.accept: the one value is "anything"`);
    } else if (rule.decision === 'reject') {
      const v = fields.get('reject');
      if (!isScalar(v) || v.value !== true) fail(v, `${at}.reject: the one value is true`);
    } else {
      const req = fields.get('require');
      if (!isMap(req)) fail(req, `${at}.require: expected keys: [FILE…], certificates: [FILE…] and/or keyless: [{issuer, identity}…] with trustedRoot: FILE`);
      const known = ['keys', 'certificates', 'keyless', 'trustedRoot'];
      const given = new Map<string, Node>();
      for (const item of (req as import('yaml').YAMLMap).items) {
        const k = isScalar(item.key) ? String(item.key.value) : '?';
        if (!known.includes(k)) fail(item.key as Node, `${at}.require: unknown key "${k}" (known: ${known.join(', ')})`);
        given.set(k, item.value as Node);
      }
      const readAt = async (f: import('yaml').Scalar<string>, k: string): Promise<{ path: string; text: string }> => {
        const path = resolve(base, f.value);
        try {
          return { path, text: await readFile(path, 'utf8') };
        } catch (e) {
          return fail(f, `${at}.require.${k}: ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      };
      for (const k of ['keys', 'certificates'] as const) {
        const files = given.get(k);
        if (files === undefined) continue;
        if (!isSeq(files) || !files.items.every((f) => isScalar(f) && typeof f.value === 'string')) fail(files, `${at}.require.${k}: expected a list of file paths`);
        for (const f of (files as import('yaml').YAMLSeq<import('yaml').Scalar<string>>).items) {
          const { path, text } = await readAt(f, k);
          if (k === 'keys') rule.keys.push(readPublicKey(text, path));
          else rule.certificates.push(...certificatesFromPem(text, path));
        }
      }
      const keyless = given.get('keyless');
      const rootNode = given.get('trustedRoot');
      if (keyless !== undefined || rootNode !== undefined) {
        if (keyless === undefined) fail(rootNode, `${at}.require.trustedRoot: goes with keyless: [{issuer, identity}…]`);
        if (rootNode === undefined) fail(keyless, `${at}.require.keyless: needs trustedRoot: FILE (the Sigstore trusted root the certificates chain to)`);
        if (!isScalar(rootNode) || typeof rootNode.value !== 'string') fail(rootNode, `${at}.require.trustedRoot: expected a file path`);
        const { path, text } = await readAt(rootNode as import('yaml').Scalar<string>, 'trustedRoot');
        let root: TrustedRoot;
        try {
          root = parseTrustedRoot(text, path);
        } catch (e) {
          return fail(rootNode, `${at}.require.trustedRoot: ${(e as Error).message}`);
        }
        if (!isSeq(keyless) || !keyless.items.length) fail(keyless, `${at}.require.keyless: expected a list of {issuer or issuerRegexp, identity or identityRegexp}`);
        const identities = (keyless as import('yaml').YAMLSeq).items.map((n, j) => keylessIdentity(n as Node, `${at}.require.keyless[${j}]`, fail));
        rule.keyless = { identities, root };
      }
      if (!rule.keys.length && !rule.certificates.length && !rule.keyless) fail(req, `${at}.require: name at least one key, certificate or keyless identity`);
    }
    rules.push(rule);
  }
  return { file, rules };
}

/** One keyless identity: exactly one of issuer/issuerRegexp and one of identity/identityRegexp, as cosign's flags. */
function keylessIdentity(node: Node, at: string, fail: (n: Node | null | undefined, why: string) => never): CertificateIdentity {
  if (!isMap(node)) fail(node, `${at}: expected a mapping of issuer (or issuerRegexp) and identity (or identityRegexp)`);
  const known = ['issuer', 'issuerRegexp', 'identity', 'identityRegexp'];
  const out: CertificateIdentity = {};
  for (const item of (node as import('yaml').YAMLMap).items) {
    const k = isScalar(item.key) ? String(item.key.value) : '?';
    if (!known.includes(k)) fail(item.key as Node, `${at}: unknown key "${k}" (known: ${known.join(', ')})`);
    const v = item.value as Node;
    if (!isScalar(v) || typeof v.value !== 'string' || v.value === '') fail(v, `${at}.${k}: expected a string`);
    const text = (v as import('yaml').Scalar<string>).value;
    if (k === 'issuer' || k === 'identity') out[k] = text;
    else {
      try {
        out[k as 'issuerRegexp' | 'identityRegexp'] = new RegExp(text);
      } catch (e) {
        fail(v, `${at}.${k}: not a regular expression: ${(e as Error).message}`);
      }
    }
  }
  for (const [a, b] of [['issuer', 'issuerRegexp'], ['identity', 'identityRegexp']] as const) {
    if ((out[a] === undefined) === (out[b] === undefined)) fail(node, `${at}: give exactly one of ${a} and ${b}`);
  }
  return out;
}

/** The rule deciding for `repository` (registry host and path: docker.io/library/busybox), if any. */
export function ruleFor(policy: ImagePolicy, repository: string): PolicyRule | undefined {
  return policy.rules.find((r) => picomatch.isMatch(repository, r.match, { dot: true, strictBrackets: true }));
}

export function describeRule(policy: ImagePolicy, rule: PolicyRule): string {
  return `${policy.file}:${rule.line}: rule ${rule.index} (match "${rule.match}")`;
}

/** What a `require` rule trusts, for messages: key fingerprints and certificate subjects. */
export function describeTrusted(rule: PolicyRule): string {
  return [
    ...rule.keys.map((k) => `key sha256:${keyHint(k)}`),
    ...rule.certificates.map((c) => `certificate "${c.subject.replace(/\n/g, ', ')}"`),
    ...(rule.keyless?.identities ?? []).map(describeIdentity),
  ].join(', ');
}
