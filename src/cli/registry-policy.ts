import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { collect, out } from './context.js';
import { renderTable } from '../ui/table.js';
import type { Metadata } from '../registry/server/metadata/metadata.js';

// `kiln registry policy set|list|rm`: namespaces' signature policies, written offline to the
// registry's database (a serving SQLite registry sees a change within its 250 ms poll).

type RootOpts = { root?: string; config?: string };

export function registerPolicyCommands(
  registry: Command,
  withRoot: (c: Command) => Command,
  offline: <T>(o: RootOpts, fn: (m: Metadata) => Promise<T>) => Promise<T>,
  actor: () => string,
): void {
  const policy = registry.command('policy').description('Signature policies: the images of a namespace must be signed by these keys or certificates to be pulled or promoted');
  withRoot(policy.command('set'))
    .description('Require a signature by one of the keys (or chaining to one of the certificates) on pulls and/or promotions of the namespace\'s manifests; replaces the namespace\'s policy')
    .argument('<namespace>')
    .option('--require-signature', 'the policy: a verified signature is required (the only kind)')
    .option('--key <file>', 'public key (PEM) a signature may verify with (repeatable)', collect, [])
    .option('--certificate <file>', 'CA certificate (PEM) a Notation signature\'s chain may reach (repeatable)', collect, [])
    .option('--on <points>', 'pull, promote or pull,promote', 'pull')
    .action(async (ns: string, o: RootOpts & { requireSignature?: boolean; key: string[]; certificate: string[]; on: string }) => {
      if (!o.requireSignature) throw new UsageError('give --require-signature (the one kind of policy there is)');
      const { parseEnforcement, setSignaturePolicy } = await import('../registry/server/signature-policy.js');
      const on = parseEnforcement(o.on);
      const read = (files: string[]) => Promise.all(files.map(async (file) => ({ file, pem: await readFile(file, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`${file}: ${e.message}`))) })));
      const input = { keys: await read(o.key), certificates: await read(o.certificate), on };
      await offline(o, (m) => setSignaturePolicy(m, actor(), ns, input));
      out(`Namespace ${ns}: ${on.join(' and ')} need${on.length > 1 ? '' : 's'} a signature by ${[...o.key, ...o.certificate].join(', ')}`);
    });
  withRoot(policy.command('list'))
    .alias('ls')
    .description('List signature policies')
    .option('--format <format>', 'table or json', 'table')
    .action(async (o: RootOpts & { format: string }) => {
      const { describeStoredPolicy } = await import('../registry/server/signature-policy.js');
      const list = (await offline(o, (m) => m.signaturePolicies())).map(describeStoredPolicy);
      if (o.format === 'json') return out(JSON.stringify(list, null, 2));
      process.stdout.write(renderTable(['NAMESPACE', 'ON', 'KEYS', 'CERTIFICATES', 'BY'], list.map((p) => [p.namespace, p.on.join(','), p.keys.join(' '), p.certificates.join('; '), p.createdBy])));
    });
  withRoot(policy.command('rm'))
    .description('Remove the namespace\'s signature policy')
    .argument('<namespace>')
    .action(async (ns: string, o: RootOpts) => {
      const { removeSignaturePolicy } = await import('../registry/server/signature-policy.js');
      await offline(o, (m) => removeSignaturePolicy(m, actor(), ns));
    });
}
