#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { KilnError } from '../errors.js';
import { registerImageCommands } from './images.js';
import { registerArchiveCommands } from './archive.js';
import { registerBuildCommand } from './build.js';
import { registerRegistryCommands } from './registry.js';
import { registerDistributionCommands } from './distribution.js';
import { registerFlatCommands } from './flat.js';
import { registerPipelineCommands } from './pipeline.js';
import { registerContainerCommands } from './container.js';
import { registerQueryCommand } from './query.js';
import { registerScanCommands } from './scan.js';
import { registerSbomCommand } from './sbom.js';
import { registerBakeCommand } from './bake.js';
import { reexecInUserNamespace } from '../sandbox/userns.js';
import type { GlobalOptions } from './context.js';

const program = new Command();
program
  .name('kiln')
  .description('Daemonless, rootless container image toolchain')
  .version('0.1.0')
  .option('--root <dir>', 'store root (default: $KILN_ROOT, /var/lib/kiln as root, else $XDG_DATA_HOME/kiln)')
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
registerImageCommands(program, globals);
registerArchiveCommands(program, globals);
registerFlatCommands(program, globals);
registerBuildCommand(program, globals);
registerContainerCommands(program, globals);
registerRegistryCommands(program, globals);
registerDistributionCommands(program, globals);
registerPipelineCommands(program, globals);
registerQueryCommand(program, globals);
registerScanCommands(program, globals);
registerSbomCommand(program, globals);
registerBakeCommand(program, globals);

/** The one place where errors become a message and an exit code. */
async function main(): Promise<void> {
  try {
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

await main();
