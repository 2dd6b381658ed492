// Rules beyond hadolint, with kiln's own ids (KL…). On by default unless their severity is `ignore`;
// like any rule they are switched on, off or re-graded with `ignored` and `override`.

import { looksSecret } from '../../dockerfile/lint.js';
import { actionArgs, hasOption, isAction, type ShellCommand } from '../shell.js';
import type { LintContext, Rule } from '../rule.js';
import { parsedRuns } from './commands.js';
import { isExternalImage, isUrl, resolveImageName } from './instructions.js';
import { isApt, isNpmInstall, isYarnInstall, mountsOver, pipInstall } from './packages.js';

/** Values that are credentials whatever the variable is called. */
const secretValues: [RegExp, string][] = [
  [/AKIA[0-9A-Z]{16}/, 'an AWS access key id'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a private key'],
  [/\bgh[pousr]_[A-Za-z0-9]{36,}/, 'a GitHub token'],
  [/\bgithub_pat_[A-Za-z0-9_]{40,}/, 'a GitHub token'],
  [/\bglpat-[A-Za-z0-9_-]{20,}/, 'a GitLab token'],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}/, 'a Slack token'],
  [/\bAIza[0-9A-Za-z_-]{35}\b/, 'a Google API key'],
  [/\bsk_live_[0-9a-zA-Z]{20,}/, 'a Stripe secret key'],
  [/\bnpm_[A-Za-z0-9]{36}\b/, 'an npm token'],
  [/\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'a JSON web token'],
];

export function secretKind(value: string): string | undefined {
  return secretValues.find(([re]) => re.test(value))?.[1];
}

/** Commands that install a project's dependencies from its manifest (package.json, requirements.txt, …). */
function installsDependencies(c: ShellCommand): boolean {
  if (isAction(c, ['npm'], ['install', 'i', 'ci'], {}) || isAction(c, ['yarn', 'pnpm'], ['install'], {}) || (c.name === 'yarn' && c.args.length === 0)) return true;
  const pip = pipInstall(c);
  if (pip && hasOption(pip, 'r', ['requirement'], {})) return true;
  if (isAction(c, ['poetry', 'pipenv', 'bundle', 'composer', 'uv'], ['install', 'sync'], {})) return true;
  if (isAction(c, ['go'], ['mod'], {}) && actionArgs(c)[0]?.value === 'download') return true;
  if (isAction(c, ['cargo'], ['fetch'], {})) return true;
  if ((c.name === 'mvn' || c.name === 'mvnw') && c.args.some((a) => a.value?.startsWith('dependency:'))) return true;
  return false;
}

const wholeContext = (src: string) => ['.', './', '*', './*'].includes(src);

/** Package downloads a cache mount would keep between builds: the command and the directory. */
function cacheCandidate(c: ShellCommand): { tool: string; dir: string } | undefined {
  if (isApt(c, ['install'])) return { tool: 'apt-get', dir: '/var/cache/apt' };
  if (pipInstall(c)) return { tool: 'pip', dir: '/root/.cache/pip' };
  if (isNpmInstall(c) || isAction(c, ['npm'], ['ci'], {})) return { tool: 'npm', dir: '/root/.npm' };
  if (isYarnInstall(c)) return { tool: 'yarn', dir: '/usr/local/share/.cache/yarn' };
  return undefined;
}

function declaresProduction(ctx: LintContext): boolean {
  return ctx.production;
}

export const kilnRules: Rule[] = [
  {
    code: 'KL1001',
    severity: 'warning',
    message: 'ARG or ENV holds what looks like a secret: it stays in the image config or history. Use RUN --mount=type=secret',
    check(ctx, report) {
      for (const i of ctx.dockerfile.instructions) {
        const pairs = i.kind === 'env' ? i.pairs.map((kv) => ({ key: kv.key, value: kv.value })) : i.kind === 'arg' ? i.args : [];
        for (const kv of pairs) {
          const kind = kv.value !== undefined ? secretKind(kv.value) : undefined;
          if (kind) report(i.line, `${i.kind.toUpperCase()} ${kv.key} holds ${kind}: it stays in the image. Use RUN --mount=type=secret`);
          else if (looksSecret(kv.key)) report(i.line, `${i.kind.toUpperCase()} ${kv.key} looks like a secret: its value stays in the image config or history. Use RUN --mount=type=secret`);
        }
      }
    },
  },
  {
    code: 'KL1002',
    severity: 'warning',
    message: 'ADD of a remote URL without --checksum: the download is not verified and changes silently',
    check(ctx, report) {
      for (const i of ctx.dockerfile.instructions) {
        if (i.kind === 'add' && i.checksum === undefined && i.sources.some((s) => /^https?:\/\//i.test(s))) report(i.line);
      }
    },
  },
  {
    code: 'KL1003',
    severity: 'info',
    message:
      'COPY of the whole context before installing dependencies: any change to any file reruns the install. Copy the dependency manifests (package.json, requirements.txt, go.mod, …) first, install, then copy the rest',
    check(ctx, report) {
      for (const s of ctx.stages) {
        for (const i of s.instructions) {
          if (i.kind !== 'copy' || i.from !== undefined || !i.sources.some(wholeContext)) continue;
          const later = parsedRuns(ctx);
          for (const r of later) {
            if (r.stage === s.index && !r.onbuild && r.instr.line > i.line && r.commands.some(installsDependencies)) {
              report(i.line);
              break;
            }
          }
        }
      }
    },
  },
  {
    code: 'KL1004',
    severity: 'warning',
    message: 'FROM without a digest in a production Dockerfile: pin the base image by digest (image:tag@sha256:…)',
    check(ctx, report) {
      if (!declaresProduction(ctx)) return;
      for (const s of ctx.stages) {
        if (!isExternalImage(ctx, s.from, s.index)) continue;
        const name = resolveImageName(ctx, s.from.image) ?? s.from.image;
        if (!name.includes('@sha256:')) report(s.from.line);
      }
    },
  },
  {
    code: 'KL1005',
    severity: 'ignore',
    message: 'RUN downloads packages: a cache mount keeps the downloads between builds without putting them in the layer',
    check(ctx, report) {
      for (const r of parsedRuns(ctx)) {
        for (const c of r.commands) {
          const hit = cacheCandidate(c);
          if (hit && !mountsOver(r, hit.dir)) {
            report(r.instr.line, `RUN downloads packages with ${hit.tool}: RUN --mount=type=cache,target=${hit.dir} keeps them between builds without putting them in the layer`);
            break;
          }
        }
      }
    },
  },
];

export { isUrl };
