import { parseNamed, parseReference, repositoryOf } from '../reference/reference.js';
import type { Store, StoredImage } from '../store/store.js';
import { PolicyRefused } from './errors.js';
import { describeRule, describeTrusted, ruleFor, type ImagePolicy, type PolicyRule } from './policy.js';
import { registrySource } from './remote.js';
import { storeSource } from './stored.js';
import type { SignatureReader } from './source.js';
import { verifySignatures } from './verify.js';

// Applying the client-side policy (policy.ts) to an image about to be pulled (kiln pull, kiln
// build's FROM) or run: the rule matching its repository accepts, rejects, or requires a signature
// that verifies with its keys or certificates, found as kiln verify finds it.

/**
 * Before a pull downloads anything: `digests` are what the reference resolved to (the index and
 * the chosen platform's manifest); a signature of either counts, looked up in the registry.
 */
export async function admitPull(policy: ImagePolicy, reference: string, digests: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const ref = parseNamed(reference);
  const repository = repositoryOf(ref);
  const rule = decide(policy, repository, reference);
  if (!rule) return;
  const sources = digests.map((d) => () => registrySource(`${repository}@${d}`, env));
  await requireSigned(policy, rule, `${reference}@${digests[0]}`, sources);
}

/**
 * Before kiln run, and for kiln build's FROM images already in the store: signatures kept with the
 * image in the store, else the registry its name names. The name checked is `reference`'s when it
 * is one of the image's names (FROM busybox); an image ID stands for all of them.
 */
export async function admitStored(policy: ImagePolicy, store: Store, image: StoredImage, reference?: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const named = image.names.filter((n) => !n.includes('@'));
  const asked = reference === undefined ? undefined : repositoryIfName(reference);
  const chosen = named.filter((n) => repositoryOf(parseReference(n)) === asked);
  for (const name of chosen.length ? chosen : named.length ? named : image.names) {
    const repository = repositoryOf(parseReference(name));
    const rule = decide(policy, repository, name);
    if (!rule) continue;
    const digest = image.manifestDescriptor.digest;
    await requireSigned(policy, rule, `${name}@${digest}`, [async () => storeSource(store, image), () => registrySource(`${repository}@${digest}`, env)]);
  }
}

function repositoryIfName(reference: string): string | undefined {
  try {
    return repositoryOf(parseReference(reference));
  } catch {
    return undefined;
  }
}

/** The require rule to check, or undefined when the image is accepted; throws for reject. */
function decide(policy: ImagePolicy, repository: string, shown: string): PolicyRule | undefined {
  const rule = ruleFor(policy, repository);
  if (!rule || rule.decision === 'accept') return undefined;
  if (rule.decision === 'reject') throw new PolicyRefused(`${shown}: rejected by ${describeRule(policy, rule)}`);
  return rule;
}

async function requireSigned(policy: ImagePolicy, rule: PolicyRule, shown: string, sources: (() => Promise<SignatureReader>)[]): Promise<void> {
  const failures: string[] = [];
  const unreadable: string[] = [];
  let found = 0;
  for (const open of sources) {
    let source: SignatureReader;
    try {
      source = await open();
    } catch (e) {
      unreadable.push((e as Error).message);
      continue;
    }
    const results = await verifySignatures(source, { keys: rule.keys, certificates: rule.certificates, ...(rule.keyless ? { keyless: rule.keyless } : {}), annotations: {} });
    if (results.some((r) => r.verified)) return;
    found += results.length;
    failures.push(...results.map((r) => r.error ?? ''));
  }
  const why = found
    ? `none of its ${found} signatures verifies (${failures.filter(Boolean)[0]})`
    : unreadable.length === sources.length
      ? `no signature could be read (${unreadable[0]})`
      : `it has no signature${unreadable.length ? ` (and not every place could be asked: ${unreadable[0]})` : ''}`;
  throw new PolicyRefused(`${shown}: refused by ${describeRule(policy, rule)}: a signature by ${describeTrusted(rule)} is required; ${why}`);
}
