import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { userNameProblem } from '../registry/server/auth/oidc.js';
import { cliSecrets } from '../registry/server/auth/cli-secrets.js';
import { auditLog } from '../registry/server/audit.js';
import type { OfflineCommands } from './registry-groups.js';

// kiln registry oidc add-user|revoke-secret (issue 21): users of the OpenID Provider, offline.
// add-user makes the record an auth.oidc.autoOnboard: false registry needs before a first
// sign-in; the provider's subject is bound to it at that sign-in.

type RootOpts = { root?: string; config?: string; admin?: boolean };

export function registerOidcCommands(registry: Command, { withRoot, offline, actor }: OfflineCommands): void {
  const oidc = registry.command('oidc').description('Users of the OpenID Provider (auth.oidc) and their CLI secrets');
  withRoot(oidc.command('add-user'))
    .description('Let NAME (as the provider names them) sign in when auth.oidc.autoOnboard is false')
    .argument('<name>')
    .option('--admin', 'make the user a system administrator')
    .action(async (name: string, o: RootOpts) =>
      offline(o, async (m) => {
        const problem = userNameProblem(name.normalize('NFC'));
        if (problem) throw new UsageError(`user name "${name}" ${problem}`);
        if (await m.getUser(name.normalize('NFC'))) throw new UsageError(`user "${name}" exists`);
        await m.putUser({ name: name.normalize('NFC'), passwordHash: '', admin: !!o.admin, createdAt: Date.now(), provider: 'oidc' });
        await m.recordAudit([{ time: Date.now(), actor: actor(), action: 'user-add', detail: `${name} (OpenID Connect${o.admin ? ', system administrator' : ''})` }]);
      }),
    );
  withRoot(oidc.command('revoke-secret'))
    .description("Revoke NAME's CLI secret")
    .argument('<name>')
    .action(async (name: string, o: RootOpts) =>
      offline(o, async (m) => {
        const audit = auditLog(m, { pulls: false, onError: (e) => process.stderr.write(`warning: audit: ${String(e)}\n`) });
        await cliSecrets(m, audit).revoke(name, actor(), '-');
        await audit.close();
      }),
    );
}
