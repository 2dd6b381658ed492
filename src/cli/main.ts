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
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof KilnError) {
      process.stderr.write(`Error: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`Error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
}

await main();
