import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { ImageUnknown, UsageError } from '../errors.js';
import { collect, openStore, out, type GlobalOptions } from './context.js';
import type { SignatureSource } from '../sign/source.js';

// `kiln key`, `kiln sign`, `kiln verify`: cosign-compatible keys and signatures of images in the
// store or in a registry.

interface SourceFlags {
  remote?: boolean;
}

export function registerSignCommands(program: Command, globals: () => GlobalOptions): void {
  const key = program.command('key').description('Make and import signing keys in cosign\'s encrypted format');
  key
    .command('generate')
    .description('Write a new ECDSA P-256 key pair: PREFIX.key (encrypted, cosign\'s format) and PREFIX.pub; password from $KILN_PASSWORD, $COSIGN_PASSWORD or a prompt')
    .option('-o, --output <prefix>', 'file name prefix', 'cosign')
    .option('--force', 'overwrite existing files')
    .action(async (o: { output: string; force?: boolean }) => {
      const { generateKey } = await import('../sign/keys.js');
      await writeKeyPair(generateKey(), o.output, !!o.force);
    });
  key
    .command('import')
    .description('Encrypt a plain PEM private key (EC P-256/P-384, RSA, Ed25519; PKCS#8, SEC1 or PKCS#1) into cosign\'s format')
    .argument('<file>', 'the PEM private key')
    .option('-o, --output <prefix>', 'file name prefix', 'import-cosign')
    .option('--force', 'overwrite existing files')
    .action(async (file: string, o: { output: string; force?: boolean }) => {
      const { readPlainKey } = await import('../sign/keys.js');
      await writeKeyPair(readPlainKey(await readFile(file, 'utf8'), file), o.output, !!o.force);
    });

  program
    .command('sign')
    .description('Sign the digest an image has now (in the store, or in the registry its name points to) as cosign does; in the store the signature is kept beside the image and pushed and saved with it')
    .argument('<image>', 'NAME[:TAG|@DIGEST] or ID')
    .requiredOption('--key <file>', 'private key (cosign\'s encrypted format, or plain PEM); password from $KILN_PASSWORD, $COSIGN_PASSWORD or a prompt')
    .option('-a, --annotation <key=value>', 'annotation to sign with the digest (repeatable)', collect, [])
    .option('--format <format>', 'bundle (a Sigstore bundle as an OCI referrer, cosign v3) or legacy (cosign\'s sha256-<hex>.sig tag)', 'bundle')
    .option('--remote', 'IMAGE is a registry reference: sign what the registry has, whatever the store holds')
    .action(async (image: string, o: SourceFlags & { key: string; annotation: string[]; format: string }) => {
      if (o.format !== 'bundle' && o.format !== 'legacy') throw new UsageError(`unknown --format "${o.format}": use bundle or legacy`);
      const annotations = parseAnnotations(o.annotation);
      const [{ readPrivateKey }, { signImage }] = await Promise.all([import('../sign/keys.js'), import('../sign/sign.js')]);
      const privateKey = await readPrivateKey(await readFile(o.key, 'utf8'), o.key, () => password(o.key, false));
      const source = await openSource(image, o, globals, true);
      const r = await signImage(source, privateKey, annotations, o.format);
      out(`Signed ${source.name}@${r.digest}: ${r.where}`);
    });

  program
    .command('verify')
    .description('Verify the signatures of an image (cosign bundles and .sig signatures by key, keyless cosign bundles by identity and trusted root, Notation signatures by certificate); exits 0 only when one verifies')
    .argument('<image>', 'NAME[:TAG|@DIGEST] or ID')
    .option('--key <file>', 'public key (PEM) a signature must verify with (repeatable)', collect, [])
    .option('--certificate <file>', 'certificate (PEM) a Notation signature\'s chain must reach (repeatable)', collect, [])
    .option('-a, --annotation <key=value>', 'annotation a signature must carry (repeatable)', collect, [])
    .option('--output <format>', 'text or json', 'text')
    .option('--remote', 'IMAGE is a registry reference: verify what the registry has, whatever the store holds')
    .action(async (image: string, o: SourceFlags & KeylessFlags & { key: string[]; certificate: string[]; annotation: string[]; output: string }) => {
      if (o.output !== 'text' && o.output !== 'json') throw new UsageError(`unknown --output "${o.output}": use text or json`);
      const keyless = await keylessTrust(o);
      if (!o.key.length && !o.certificate.length && !keyless) throw new UsageError('give --key, --certificate or --certificate-identity with --certificate-oidc-issuer: what should a signature verify with?');
      const [{ readPublicKey }, { certificatesFromPem }, { verifySignatures }, { NotVerified }] = await Promise.all([
        import('../sign/keys.js'),
        import('../sign/x509.js'),
        import('../sign/verify.js'),
        import('../sign/errors.js'),
      ]);
      const keys = await Promise.all(o.key.map(async (f) => readPublicKey(await readFile(f, 'utf8'), f)));
      const certificates = (await Promise.all(o.certificate.map(async (f) => certificatesFromPem(await readFile(f, 'utf8'), f)))).flat();
      const source = await openSource(image, o, globals);
      const results = await verifySignatures(source, { keys, certificates, ...(keyless ? { keyless } : {}), annotations: parseAnnotations(o.annotation) });
      const verified = results.filter((r) => r.verified);
      if (o.output === 'json') out(JSON.stringify({ image: source.name, digest: source.subject.digest, verified: verified.length > 0, signatures: results }, null, 2));
      else {
        for (const r of verified) out(`Verified: ${r.format} signature of ${source.name}@${source.subject.digest} by ${r.format === 'notation-jws' ? `certificate "${r.signer}"` : r.identity ? `identity ${r.signer}` : `key sha256:${r.signer}`} (${r.from}, ${r.artifact})`);
        for (const r of results) if (!r.verified) process.stderr.write(`not verified: ${r.error}\n`);
      }
      if (!verified.length) {
        throw new NotVerified(results.length ? `no signature of ${source.name}@${source.subject.digest} verifies (${results.length} found, none valid)` : `${source.name}@${source.subject.digest} has no signatures`);
      }
    });

  program
    .command('attest')
    .description('Attest the digest an image has now: the predicate in an in-toto statement, signed in a Sigstore bundle and kept (store) or pushed (registry) as a referrer, as cosign attest v3 does')
    .argument('<image>', 'NAME[:TAG|@DIGEST] or ID')
    .requiredOption('--key <file>', 'private key (cosign\'s encrypted format, or plain PEM); password from $KILN_PASSWORD, $COSIGN_PASSWORD or a prompt')
    .requiredOption('--predicate <file>', 'the predicate: a JSON document (SLSA provenance, SPDX, CycloneDX…)')
    .option('--type <type>', 'slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, vuln, openvex, custom, or a predicate type URI', 'custom')
    .option('--remote', 'IMAGE is a registry reference: attest what the registry has, whatever the store holds')
    .action(async (image: string, o: SourceFlags & { key: string; predicate: string; type: string }) => {
      const [{ readPrivateKey }, { attestImage, parsePredicate, predicateType }] = await Promise.all([import('../sign/keys.js'), import('../sign/attest.js')]);
      const type = predicateType(o.type);
      const predicate = parsePredicate(await readFile(o.predicate, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`${o.predicate}: ${e.message}`))), o.predicate);
      const privateKey = await readPrivateKey(await readFile(o.key, 'utf8'), o.key, () => password(o.key, false));
      const source = await openSource(image, o, globals, true);
      const r = await attestImage(source, privateKey, type, predicate);
      out(`Attested ${source.name}@${r.digest} (${type}): ${r.where}`);
    });

  program
    .command('verify-attestation')
    .description('Verify the attestations of an image with a public key and print their predicates; exits 0 only when one (of --type) verifies')
    .argument('<image>', 'NAME[:TAG|@DIGEST] or ID')
    .option('--key <file>', 'public key (PEM) an attestation must verify with (repeatable)', collect, [])
    .option('--type <type>', 'only attestations of this predicate type (a --type name of kiln attest, or a URI)')
    .option('--output <format>', 'text or json', 'text')
    .option('--remote', 'IMAGE is a registry reference: verify what the registry has, whatever the store holds')
    .action(async (image: string, o: SourceFlags & KeylessFlags & { key: string[]; type?: string; output: string }) => {
      if (o.output !== 'text' && o.output !== 'json') throw new UsageError(`unknown --output "${o.output}": use text or json`);
      const [{ readPublicKey }, { predicateType, verifyAttestations }, { NotVerified }] = await Promise.all([import('../sign/keys.js'), import('../sign/attest.js'), import('../sign/errors.js')]);
      const keyless = await keylessTrust(o);
      if (!o.key.length && !keyless) throw new UsageError('give --key, or --certificate-identity with --certificate-oidc-issuer: what should an attestation verify with?');
      const type = o.type === undefined ? undefined : predicateType(o.type);
      const keys = await Promise.all(o.key.map(async (f) => readPublicKey(await readFile(f, 'utf8'), f)));
      const source = await openSource(image, o, globals);
      const results = await verifyAttestations(source, { keys, ...(keyless ? { keyless } : {}) }, type);
      const verified = results.filter((r) => r.verified);
      if (o.output === 'json') out(JSON.stringify({ image: source.name, digest: source.subject.digest, verified: verified.length > 0, attestations: results }, null, 2));
      else {
        for (const r of verified) {
          out(`Verified: ${r.predicateType} attestation of ${source.name}@${source.subject.digest} by ${r.identity ? `identity ${r.signer}` : `key sha256:${r.signer}`} (${r.from}, ${r.artifact})`);
          out(JSON.stringify(r.predicate, null, 2));
        }
        for (const r of results) if (!r.verified) process.stderr.write(`not verified: ${r.error}\n`);
      }
      if (!verified.length) {
        const what = type ? `${type} attestation` : 'attestation';
        throw new NotVerified(results.length ? `no ${what} of ${source.name}@${source.subject.digest} verifies (${results.length} found, none valid)` : `${source.name}@${source.subject.digest} has no ${what}`);
      }
    });
  for (const name of ['verify', 'verify-attestation']) keylessOptions(program.commands.find((c) => c.name() === name)!);
}

/**
 * The image's signatures in the store, or in the registry: the store when it has IMAGE, unless
 * --remote; else the registry IMAGE names, when it names one explicitly (kiln promote's rule). To
 * sign a stored image, its distributable form is recorded first (see distributableImage).
 */
async function openSource(image: string, o: SourceFlags, globals: () => GlobalOptions, sign = false): Promise<SignatureSource> {
  if (!o.remote) {
    const store = await openStore(globals());
    try {
      const img = await store.resolveImage(image);
      const [{ storeSource }, { distributableImage }] = await Promise.all([import('../sign/stored.js'), import('../registry/client/push.js')]);
      return storeSource(store, sign ? await distributableImage(store, img) : img);
    } catch (e) {
      if (!(e instanceof ImageUnknown) || !namesRegistry(image)) throw e;
    }
  }
  const { registrySource } = await import('../sign/remote.js');
  return registrySource(image);
}

/** cosign verify's keyless flags, for kiln verify and kiln verify-attestation. */
function keylessOptions(cmd: Command): void {
  cmd
    .option('--certificate-identity <identity>', 'keyless: the identity (email or URI) the Fulcio certificate must name')
    .option('--certificate-identity-regexp <re>', 'keyless: a regular expression the identity must match')
    .option('--certificate-oidc-issuer <url>', 'keyless: the OIDC issuer the certificate must name')
    .option('--certificate-oidc-issuer-regexp <re>', 'keyless: a regular expression the OIDC issuer must match')
    .option('--trusted-root <file>', 'keyless: the Sigstore trusted root (trusted_root.json: Fulcio CAs, Rekor keys) to verify certificates and log entries with');
}

interface KeylessFlags {
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  certificateOidcIssuerRegexp?: string;
  trustedRoot?: string;
}

/** The keyless identity and trusted root asked for, as cosign verify takes them: one of each pair, and the root. */
async function keylessTrust(o: KeylessFlags): Promise<import('../sign/verify.js').Trust['keyless']> {
  const given = [o.certificateIdentity, o.certificateIdentityRegexp, o.certificateOidcIssuer, o.certificateOidcIssuerRegexp, o.trustedRoot].some((v) => v !== undefined);
  if (!given) return undefined;
  const pairs = [
    ['--certificate-identity', o.certificateIdentity, o.certificateIdentityRegexp],
    ['--certificate-oidc-issuer', o.certificateOidcIssuer, o.certificateOidcIssuerRegexp],
  ] as const;
  for (const [flag, exact, re] of pairs) {
    if (exact === undefined && re === undefined) throw new UsageError(`keyless verification needs ${flag} or ${flag}-regexp`);
    if (exact !== undefined && re !== undefined) throw new UsageError(`give ${flag} or ${flag}-regexp, not both`);
  }
  if (o.trustedRoot === undefined) throw new UsageError('keyless verification needs --trusted-root FILE (the Sigstore trusted root: Fulcio CAs and Rekor keys)');
  const regexp = (flag: string, re: string | undefined) => {
    if (re === undefined) return undefined;
    try {
      return new RegExp(re);
    } catch (e) {
      throw new UsageError(`${flag}: not a regular expression: ${(e as Error).message}`);
    }
  };
  const { parseTrustedRoot } = await import('../sign/bundle.js');
  const text = await readFile(o.trustedRoot, 'utf8').catch((e: NodeJS.ErrnoException) => Promise.reject(new UsageError(`--trusted-root ${o.trustedRoot}: ${e.code ?? e.message}`)));
  const identityRegexp = regexp('--certificate-identity-regexp', o.certificateIdentityRegexp);
  const issuerRegexp = regexp('--certificate-oidc-issuer-regexp', o.certificateOidcIssuerRegexp);
  const identity = {
    ...(o.certificateIdentity !== undefined ? { identity: o.certificateIdentity } : {}),
    ...(identityRegexp ? { identityRegexp } : {}),
    ...(o.certificateOidcIssuer !== undefined ? { issuer: o.certificateOidcIssuer } : {}),
    ...(issuerRegexp ? { issuerRegexp } : {}),
  };
  return { identities: [identity], root: parseTrustedRoot(text, o.trustedRoot) };
}

/** docker's rule: a first component with a dot or a port, or localhost, is a registry host. */
function namesRegistry(ref: string): boolean {
  const slash = ref.indexOf('/');
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first === 'localhost' || /[.:]/.test(first);
}

function parseAnnotations(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid annotation "${a}": expected key=value`);
    out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

async function writeKeyPair(key: import('node:crypto').KeyObject, prefix: string, force: boolean): Promise<void> {
  const { encryptKey, publicKeyPem } = await import('../sign/keys.js');
  const files = [`${prefix}.key`, `${prefix}.pub`];
  if (!force) for (const f of files) if (existsSync(f)) throw new UsageError(`${f} exists: remove it or give --force to overwrite it`);
  const sealed = await encryptKey(key, await password(files[0]!, true));
  await writeFile(files[0]!, sealed, { mode: 0o600, flag: force ? 'w' : 'wx' });
  await writeFile(files[1]!, publicKeyPem(key), { mode: 0o644, flag: force ? 'w' : 'wx' });
  out(`Private key written to ${files[0]}`);
  out(`Public key written to ${files[1]}`);
}

/** $KILN_PASSWORD, else $COSIGN_PASSWORD (an empty one counts, as in cosign), else a prompt on a terminal. */
async function password(file: string, confirm: boolean): Promise<string> {
  const env = process.env.KILN_PASSWORD ?? process.env.COSIGN_PASSWORD;
  if (env !== undefined) return env;
  if (!process.stdin.isTTY) throw new UsageError(`a password is needed for ${file}: set KILN_PASSWORD (or COSIGN_PASSWORD), or run on a terminal`);
  const first = await prompt(`Enter password for private key ${file}: `);
  if (confirm && (await prompt('Enter password for private key again: ')) !== first) throw new UsageError('passwords do not match');
  return first;
}

async function prompt(question: string): Promise<string> {
  const { createInterface } = await import('node:readline');
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  process.stderr.write(question);
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) =>
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    }),
  );
}
