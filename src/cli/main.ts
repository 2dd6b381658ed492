import { Command, CommanderError } from 'commander';
import { KilnError } from '../errors.js';
import { reexecInUserNamespace } from '../sandbox/userns.js';
import type { GlobalOptions } from './context.js';

const program = new Command();
program
  .name('kiln')
  .description('Daemonless, rootless container image toolchain')
  .version('0.1.0')
  .option('--root <dir>', 'store root (default: $KILN_ROOT, /var/lib/kiln as root, else $XDG_DATA_HOME/kiln)')
  .option('--policy <file>', 'trust policy for pull, build and run (default: $KILN_POLICY, else ~/.config/kiln/policy.yaml when it exists)')
  .showHelpAfterError()
  .exitOverride();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();

/**
 * Commands that mount snapshots or start sandboxes. Run by a non-root user, they re-run kiln as root
 * of a user namespace of its own (rootless mode, as buildah and podman do); every other command
 * reads and writes the store as the user. (kiln bake decides for itself: a dry run needs no namespace.)
 */
const needsNamespace = new Set(['build', 'run', 'create', 'start', 'stop', 'kill', 'rm', 'diff', 'commit', 'cp', 'test']);

/** The re-run kiln's exit code, passed through as this process's own. */
class DelegatedExit extends Error {
  constructor(readonly code: number) {
    super(`exited ${code}`);
  }
}

program.hook('preAction', async (_program, action) => {
  if (!needsNamespace.has(action.name()) && action.parent?.name() !== 'container') return;
  const code = await reexecInUserNamespace();
  if (code !== undefined) throw new DelegatedExit(code);
});

type Registrar = (program: Command, globals: () => GlobalOptions) => void;

/**
 * Which module registers which commands. Only the modules of the command being run are loaded: all
 * of them is some 330 modules (the registry server, SQLite, the lint parser…), half a second of
 * start-up that a `kiln push` or `kiln images` has no use for. Help and unknown commands load all.
 */
const registrars: { names: string[]; load: () => Promise<Registrar[]> }[] = [
  { names: ['builder', 'images', 'image', 'tag', 'rmi', 'inspect', 'history', 'prune'], load: async () => [(await import('./images.js')).registerImageCommands] },
  { names: ['load', 'save'], load: async () => [(await import('./archive.js')).registerArchiveCommands] },
  { names: ['import', 'export'], load: async () => [(await import('./flat.js')).registerFlatCommands] },
  // kiln build's --check, --metadata and --tag-scheme wrap the build command from a module of their own;
  // --provenance and --attest-key too, registered before build-extras' (see build-attest.ts for why).
  { names: ['build'], load: async () => [(await import('./build.js')).registerBuildCommand, (await import('./build-attest.js')).extendBuildAttestations, (await import('./build-extras.js')).extendBuild] },
  {
    names: ['container', 'run', 'create', 'ps', 'container-ls', 'rm', 'start', 'stop', 'kill', 'logs', 'diff', 'commit', 'cp'],
    load: async () => [(await import('./container.js')).registerContainerCommands],
  },
  { names: ['registry'], load: async () => [(await import('./registry.js')).registerRegistryCommands] },
  { names: ['pull', 'push', 'login', 'logout'], load: async () => [(await import('./distribution.js')).registerDistributionCommands] },
  { names: ['lint', 'test', 'analyze', 'audit', 'promote'], load: async () => [(await import('./pipeline.js')).registerPipelineCommands] },
  { names: ['query'], load: async () => [(await import('./query.js')).registerQueryCommand] },
  { names: ['db', 'scan'], load: async () => [(await import('./scan.js')).registerScanCommands] },
  { names: ['sbom'], load: async () => [(await import('./sbom.js')).registerSbomCommand] },
  { names: ['bake'], load: async () => [(await import('./bake.js')).registerBakeCommand] },
  { names: ['key', 'sign', 'verify', 'attest', 'verify-attestation'], load: async () => [(await import('./sign.js')).registerSignCommands] },
];

/** The command named on the command line: the first argument that is not a global option. */
function commandName(argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Registers the commands named on the command line (all of them for help or an unknown one). */
async function registerCommands(argv: string[]): Promise<void> {
  const wanted = commandName(argv);
  const chosen = registrars.filter((r) => wanted !== undefined && r.names.includes(wanted));
  // `kiln --version` alone needs no command at all.
  const versionOnly = argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V');
  const registered = new Set<Registrar>();
  for (const r of versionOnly ? [] : chosen.length ? chosen : registrars) {
    for (const register of await r.load()) {
      if (registered.has(register)) continue;
      registered.add(register);
      register(program, globals);
    }
  }
}

/** The one place where errors become a message and an exit code. */
async function main(): Promise<void> {
  try {
    await registerCommands(process.argv);
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof DelegatedExit) {
      process.exitCode = e.code;
      return;
    }
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof KilnError) {
      process.stderr.write(`Error: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    // A system call that failed (EACCES on a destination, ENOSPC) is the user's condition to fix,
    // not a bug in kiln: its message names the call and the path, a stack trace adds nothing.
    if (e instanceof Error && typeof (e as NodeJS.ErrnoException).syscall === 'string') {
      process.stderr.write(`Error: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`Error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
}

void main();
