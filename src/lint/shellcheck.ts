// ShellCheck over shell-form RUN instructions, as hadolint does: each script is checked in the dialect
// of the stage's SHELL, with the stage's ARG and ENV names declared first so they do not count as
// unset. ShellCheck is optional (Debian package `shellcheck`); findings are reported at the RUN line.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findProgram } from '../sandbox/program.js';
import type { Severity } from './rule.js';

export interface ShellcheckInput {
  /** The RUN's first line: where findings are reported. */
  line: number;
  script: string;
  /** The stage's shell program (`/bin/bash`). */
  shell: string;
  /** ARG and ENV names in effect. */
  variables: string[];
}

export interface ShellcheckFinding {
  line: number;
  code: string;
  level: Severity;
  message: string;
}

/** ShellCheck's path: $KILN_LINT_SHELLCHECK (`none` disables it), else `shellcheck` on PATH. */
export function findShellcheck(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.KILN_LINT_SHELLCHECK;
  if (configured === 'none' || configured === '') return undefined;
  return findProgram(configured ?? 'shellcheck');
}

/** ShellCheck's dialect for a shell program, or undefined when it has none (zsh, fish). */
function dialect(shell: string): string | undefined {
  const name = shell.slice(shell.lastIndexOf('/') + 1);
  switch (name) {
    case 'sh':
      return 'sh';
    case 'bash':
      return 'bash';
    case 'dash':
      return 'dash';
    case 'ksh':
    case 'mksh':
      return 'ksh';
    case 'ash':
    case 'busybox':
      return 'busybox';
    default:
      return undefined;
  }
}

// Findings that make no sense for a RUN line: sourcing files ShellCheck cannot see.
const excluded = ['SC1090', 'SC1091'];

export async function runShellcheck(program: string, inputs: ShellcheckInput[]): Promise<ShellcheckFinding[]> {
  const checked = inputs.filter((i) => dialect(i.shell) !== undefined);
  if (checked.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'kiln-shellcheck-'));
  try {
    const byFile = new Map<string, ShellcheckInput>();
    const files: string[] = [];
    for (const [n, input] of checked.entries()) {
      const file = join(dir, `run-${n}.sh`);
      const declare = input.variables.filter((v) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)).map((v) => `export ${v}=1`);
      // `# shellcheck shell=` sets the dialect per file; the declarations come first, the script as written after.
      await writeFile(file, [`# shellcheck shell=${dialect(input.shell)}`, ...declare, input.script].join('\n') + '\n');
      byFile.set(file, input);
      files.push(file);
    }
    const json = await new Promise<string>((resolve, reject) => {
      execFile(program, ['--format=json1', `--exclude=${excluded.join(',')}`, ...files], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        // Exit 1 means "found something"; anything else without JSON is a failure of ShellCheck itself.
        if (err && !stdout.startsWith('{')) reject(new Error(`shellcheck failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
    });
    const doc = JSON.parse(json) as { comments: { file: string; code: number; level: string; message: string }[] };
    const levels: Record<string, Severity> = { error: 'error', warning: 'warning', info: 'info', style: 'style' };
    return doc.comments.map((c) => ({
      line: byFile.get(c.file)?.line ?? 1,
      code: `SC${c.code}`,
      level: levels[c.level] ?? 'info',
      message: c.message,
    }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
