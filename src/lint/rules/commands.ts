// hadolint's rules about what RUN executes: commands that make no sense in an image, `cd`, `sudo`,
// downloads, links over /bin/sh, pipes without pipefail. They read the parsed shell (../shell.ts).

import { hasOption, positionals, type ShellCommand } from '../shell.js';
import type { LintContext, Rule, RunContext } from '../rule.js';

/** Every RUN (and ONBUILD RUN) whose shell was parsed, with its commands. */
export function* parsedRuns(ctx: LintContext): Generator<RunContext & { commands: ShellCommand[] }> {
  for (const r of ctx.runs) if (r.shell) yield { ...r, commands: r.shell.commands };
}

/** Reports each RUN at most once when one of its commands matches. */
function eachRunWith(ctx: LintContext, match: (c: ShellCommand) => boolean, report: (line: number) => void): void {
  for (const r of parsedRuns(ctx)) if (r.commands.some(match)) report(r.instr.line);
}

const pointless = ['free', 'kill', 'mount', 'ps', 'service', 'shutdown', 'ssh', 'top', 'vim'];

const useraddSpec = { shortWithValue: 'bcdefgGkKpsuRPZ', longWithValue: ['base-dir', 'comment', 'home-dir', 'expiredate', 'inactive', 'gid', 'groups', 'skel', 'key', 'password', 'shell', 'uid', 'root', 'prefix', 'selinux-user'] };

export const commandRules: Rule[] = [
  {
    code: 'DL3001',
    severity: 'info',
    message: 'For some bash commands it makes no sense running them in a Docker container like `ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`',
    check(ctx, report) {
      eachRunWith(ctx, (c) => pointless.includes(c.name), report);
    },
  },
  {
    code: 'DL3003',
    severity: 'warning',
    message: 'Use WORKDIR to switch to a directory',
    check(ctx, report) {
      eachRunWith(ctx, (c) => c.name === 'cd', report);
    },
  },
  {
    code: 'DL3004',
    severity: 'error',
    message: 'Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root',
    check(ctx, report) {
      eachRunWith(ctx, (c) => c.name === 'sudo', report);
    },
  },
  {
    code: 'DL3027',
    severity: 'warning',
    message: 'Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead',
    check(ctx, report) {
      eachRunWith(ctx, (c) => c.name === 'apt', report);
    },
  },
  {
    code: 'DL3046',
    severity: 'warning',
    message: '`useradd` without flag `-l` and high UID will result in excessively large Image.',
    check(ctx, report) {
      eachRunWith(
        ctx,
        (c) => {
          if (c.name !== 'useradd' || hasOption(c, 'l', ['no-log-init'], useraddSpec)) return false;
          const i = c.args.findIndex((a) => a.value === '-u' || a.value === '--uid' || a.value?.startsWith('--uid='));
          if (i < 0) return false;
          const a = c.args[i]!.value!;
          const uid = a.startsWith('--uid=') ? a.slice(6) : c.args[i + 1]?.value;
          return uid !== undefined && /^\d{6,}$/.test(uid);
        },
        report,
      );
    },
  },
  {
    code: 'DL3047',
    severity: 'info',
    message: '`wget` without flag `--progress` will result in excessively bloated build logs when downloading larger files.',
    check(ctx, report) {
      eachRunWith(
        ctx,
        (c) =>
          c.name === 'wget' &&
          !c.args.some((a) => a.value === '-nv') &&
          !hasOption(c, 'qoa', ['progress', 'quiet', 'no-verbose', 'output-file', 'append-output'], { shortWithValue: 'oaOetTwPUiBQlARDIX' }),
        report,
      );
    },
  },
  {
    code: 'DL4001',
    severity: 'warning',
    message: 'Either use Wget or Curl but not both',
    check(ctx, report) {
      for (const stage of ctx.stages) {
        const runs = [...parsedRuns(ctx)].filter((r) => r.stage === stage.index);
        const uses = (r: { commands: ShellCommand[] }, name: string) => r.commands.some((c) => c.name === name);
        const first = runs.find((r) => uses(r, 'wget') || uses(r, 'curl'));
        if (!first || !runs.some((r) => uses(r, 'wget')) || !runs.some((r) => uses(r, 'curl'))) continue;
        // The tool that came second is the odd one out: report where it is used.
        const second = uses(first, 'curl') && !uses(first, 'wget') ? 'wget' : 'curl';
        for (const r of runs) if (uses(r, second)) report(r.instr.line);
      }
    },
  },
  {
    code: 'DL4005',
    severity: 'warning',
    message: 'Use SHELL to change the default shell',
    check(ctx, report) {
      eachRunWith(ctx, (c) => c.name === 'ln' && positionals(c, { shortWithValue: 'tS', longWithValue: ['target-directory', 'suffix'] }).at(-1)?.value === '/bin/sh', report);
    },
  },
  {
    code: 'DL4006',
    severity: 'warning',
    message:
      'Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using /bin/sh in an alpine image or if your shell is symlinked to busybox then consider explicitly setting your SHELL to /bin/ash, or disable this check',
    check(ctx, report) {
      for (const r of parsedRuns(ctx)) {
        if (!r.shell!.hasPipe || !r.instr.prependShell) continue;
        if (shellHasPipefail(r.shellCommand)) continue;
        if (r.commands.some(setsPipefail)) continue;
        report(r.instr.line);
      }
    },
  },
];

function shellHasPipefail(shell: string[]): boolean {
  // Only shells that have the option: `sh -o pipefail` is an error in dash, /bin/sh on Debian.
  const program = (shell[0] ?? '').slice((shell[0] ?? '').lastIndexOf('/') + 1);
  if (!['bash', 'zsh', 'ash', 'ksh', 'mksh'].includes(program)) return false;
  for (let i = 0; i < shell.length; i++) {
    if (shell[i] === 'pipefail' && /^-[a-z]*o$/.test(shell[i - 1] ?? '')) return true;
    if (/^-o\s*pipefail$/.test(shell[i]!)) return true;
  }
  return false;
}

/** `set -o pipefail`, `set -euo pipefail`. */
function setsPipefail(c: ShellCommand): boolean {
  if (c.name !== 'set') return false;
  return c.args.some((a, i) => a.value === 'pipefail' && /^-[a-z]*o$/.test(c.args[i - 1]?.value ?? ''));
}
