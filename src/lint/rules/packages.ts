// hadolint's package-manager rules: pinned versions, non-interactive switches, caches cleaned in the
// same layer. Each reads the commands of RUN as the shell parser found them (../shell.ts), so
// `apt-get install` after `&&`, inside `( … )`, in `sh -c '…'` or behind `sudo` all count.

import { actionArgs, countOption, hasOption, isAction, optionValue, positionals, type OptionSpec, type ShellCommand, type ShellWord } from '../shell.js';
import { stageChain, type LintContext, type Report, type Rule, type RunContext } from '../rule.js';
import { parsedRuns } from './commands.js';

const aptSpec: OptionSpec = { shortWithValue: 'oact', longWithValue: ['option', 'config-file', 'target-release', 'default-release', 'host-architecture', 'build-profiles'] };
const apkSpec: OptionSpec = { shortWithValue: 'tXp', longWithValue: ['virtual', 'repository', 'root', 'arch', 'keys-dir', 'repositories-file', 'cache-dir', 'cache-max-age', 'timeout'] };
const pipSpec: OptionSpec = {
  shortWithValue: 'rcetifC',
  longWithValue: [
    'requirement', 'constraint', 'editable', 'target', 'index-url', 'extra-index-url', 'find-links', 'prefix', 'root', 'src',
    'upgrade-strategy', 'platform', 'python-version', 'implementation', 'abi', 'progress-bar', 'cache-dir', 'log', 'proxy',
    'retries', 'timeout', 'exists-action', 'trusted-host', 'cert', 'client-cert', 'global-option', 'install-option',
    'no-binary', 'only-binary', 'config-settings', 'report', 'python', 'root-user-action',
  ],
};
const npmSpec: OptionSpec = { shortWithValue: 'w', longWithValue: ['prefix', 'registry', 'cache', 'userconfig', 'tag', 'workspace', 'omit', 'include', 'loglevel', 'install-strategy'] };
const gemSpec: OptionSpec = { shortWithValue: 'vinsP', longWithValue: ['version', 'install-dir', 'bindir', 'source', 'platform', 'document', 'trust-policy', 'build-root'] };
const rpmSpec: OptionSpec = { shortWithValue: 'cdex', longWithValue: ['config', 'debuglevel', 'errorlevel', 'exclude', 'installroot', 'releasever', 'setopt', 'enablerepo', 'disablerepo', 'repo', 'repofrompath', 'downloaddir', 'destdir', 'forcearch'] };
const zypperSpec: OptionSpec = { shortWithValue: 'RDCcrtx', longWithValue: ['root', 'reposd-dir', 'cache-dir', 'raw-cache-dir', 'config', 'repo', 'type', 'from', 'solver-focus'] };
const goSpec: OptionSpec = { shortWithValue: 'p', longWithValue: [] };

const isApt = (c: ShellCommand, sub: string[]) => isAction(c, ['apt-get'], sub, aptSpec);
const isApk = (c: ShellCommand, sub: string[]) => isAction(c, ['apk'], sub, apkSpec);
const isYum = (c: ShellCommand, sub: string[]) => isAction(c, ['yum'], sub, rpmSpec);
const isDnf = (c: ShellCommand, sub: string[]) => isAction(c, ['dnf', 'microdnf'], sub, rpmSpec);
const isZypper = (c: ShellCommand, sub: string[]) => isAction(c, ['zypper'], sub, zypperSpec);
const isNpmInstall = (c: ShellCommand) => isAction(c, ['npm'], ['install', 'i', 'add', 'isntall'], npmSpec);
const isGemInstall = (c: ShellCommand) => isAction(c, ['gem'], ['install', 'i'], gemSpec);
const isGoInstall = (c: ShellCommand) => isAction(c, ['go'], ['install'], goSpec);
const isYarnInstall = (c: ShellCommand) => isAction(c, ['yarn'], ['install'], {});

/** `pip install …`, also as `pip3`, `pip3.11` or `python -m pip`; returned with pip's own arguments. */
export function pipInstall(c: ShellCommand): ShellCommand | undefined {
  let cmd = c;
  if (/^python[\d.]*$/.test(c.name)) {
    const m = c.args.findIndex((a) => a.value === '-m');
    const mod = c.args[m + 1]?.value;
    if (m < 0 || (mod !== 'pip' && mod !== 'pip3')) return undefined;
    cmd = { name: 'pip', args: c.args.slice(m + 2), text: c.text };
  }
  if (!/^pip[\d.]*$/.test(cmd.name)) return undefined;
  return positionals(cmd, pipSpec)[0]?.value === 'install' ? cmd : undefined;
}

/** Literal package words (variables cannot be judged and are left alone). */
function packages(words: ShellWord[]): string[] {
  return words.map((w) => w.value).filter((v): v is string => v !== undefined && v !== '');
}

const isPath = (p: string) => p.startsWith('/') || p.startsWith('./') || p.startsWith('../') || p === '.' || p.startsWith('~');

/** RUN --mount=type=cache|tmpfs with a target under `dir`: the cache never reaches the layer. */
export function mountsOver(run: RunContext, dir: string): boolean {
  return run.instr.mounts.some((m) => {
    const fields = Object.fromEntries(m.split(',').map((kv) => [kv.slice(0, kv.indexOf('=') < 0 ? kv.length : kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const type = fields.type ?? 'bind';
    const target = fields.target ?? fields.dst ?? fields.destination ?? '';
    return (type === 'cache' || type === 'tmpfs') && (target === dir || dir.startsWith(target.replace(/\/?$/, '/')) || target.startsWith(dir));
  });
}

/** Reports each RUN once when one of its commands matches. */
function runsWhere(ctx: LintContext, report: Report, match: (c: ShellCommand, run: RunContext) => boolean): void {
  for (const r of parsedRuns(ctx)) if (r.commands.some((c) => match(c, r))) report(r.instr.line);
}

/** RUNs that install with a package manager but do not clean its cache in the same RUN. */
function missingCleanup(
  ctx: LintContext,
  report: Report,
  opts: { installs: (c: ShellCommand) => boolean; cleans: (c: ShellCommand) => boolean; cacheDirs: string[]; shippedOnly?: boolean },
): void {
  for (const r of parsedRuns(ctx)) {
    if (opts.shippedOnly && !ctx.shipped.has(r.stage)) continue;
    if (!r.commands.some(opts.installs)) continue;
    if (r.commands.some(opts.cleans)) continue;
    if (opts.cacheDirs.some((d) => mountsOver(r, d))) continue;
    report(r.instr.line);
  }
}

const removes = (c: ShellCommand, prefixes: string[]) => c.name === 'rm' && c.args.some((a) => a.value !== undefined && prefixes.some((p) => a.value!.startsWith(p)));
const rpmVersioned = (p: string) => /-\d/.test(p) || p.endsWith('.rpm') || p.includes('/');

export const packageRules: Rule[] = [
  {
    code: 'DL3008',
    severity: 'warning',
    message: 'Pin versions in apt get install. Instead of `apt-get install <package>` use `apt-get install <package>=<version>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isApt(c, ['install']) && packages(actionArgs(c, aptSpec)).some((p) => !p.includes('=') && !p.endsWith('.deb') && !isPath(p)));
    },
  },
  {
    code: 'DL3009',
    severity: 'info',
    message: 'Delete the apt-get lists after installing something',
    check(ctx, report) {
      // Stages that only feed COPY --from never ship their lists: hadolint leaves them alone.
      missingCleanup(ctx, report, {
        installs: (c) => isApt(c, ['update']),
        cleans: (c) => removes(c, ['/var/lib/apt/lists']),
        cacheDirs: ['/var/lib/apt/lists'],
        shippedOnly: true,
      });
    },
  },
  {
    code: 'DL3013',
    severity: 'warning',
    message: 'Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`',
    check(ctx, report) {
      const pinned = (p: string) =>
        /(==|>=|<=|~=|!=|<|>|@)/.test(p) || isPath(p) || p.includes('/') || /\.(whl|tar\.gz|zip|tgz)$/.test(p) || /^(git|hg|svn|bzr)\+/.test(p);
      runsWhere(ctx, report, (c) => {
        const pip = pipInstall(c);
        return pip !== undefined && packages(actionArgs(pip, pipSpec)).some((p) => !pinned(p));
      });
    },
  },
  {
    code: 'DL3014',
    severity: 'warning',
    message: 'Use the `-y` switch to avoid manual input `apt-get -y install <package>`',
    check(ctx, report) {
      runsWhere(
        ctx,
        report,
        (c) =>
          isApt(c, ['install']) &&
          !hasOption(c, 'y', ['yes', 'assume-yes'], aptSpec) &&
          countOption(c, 'q', ['quiet'], aptSpec) < 2 &&
          !c.args.some((a) => a.value === '-q=2' || a.value === '--quiet=2'),
      );
    },
  },
  {
    code: 'DL3015',
    severity: 'info',
    message: 'Avoid additional packages by specifying `--no-install-recommends`',
    check(ctx, report) {
      runsWhere(
        ctx,
        report,
        (c) =>
          isApt(c, ['install']) &&
          !hasOption(c, '', ['no-install-recommends'], aptSpec) &&
          !/APT::Install-Recommends=(false|0)/i.test(optionValue(c, 'o', ['option'], aptSpec) ?? ''),
      );
    },
  },
  {
    code: 'DL3016',
    severity: 'warning',
    message: 'Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`',
    check(ctx, report) {
      const pinned = (p: string) =>
        p.lastIndexOf('@') > 0 || isPath(p) || /^(git|git\+\w+|github|gitlab|bitbucket|gist|file|https?):/.test(p) || /\.(tgz|tar\.gz|tar)$/.test(p);
      runsWhere(ctx, report, (c) => isNpmInstall(c) && packages(actionArgs(c, npmSpec)).some((p) => !pinned(p)));
    },
  },
  {
    code: 'DL3018',
    severity: 'warning',
    message: 'Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isApk(c, ['add']) && packages(actionArgs(c, apkSpec)).some((p) => !/[=<>~]/.test(p) && !p.endsWith('.apk') && !isPath(p)));
    },
  },
  {
    code: 'DL3019',
    severity: 'info',
    message: 'Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages',
    check(ctx, report) {
      runsWhere(ctx, report, (c, r) => isApk(c, ['add']) && !hasOption(c, '', ['no-cache'], apkSpec) && !mountsOver(r, '/var/cache/apk') && !mountsOver(r, '/etc/apk/cache'));
    },
  },
  {
    code: 'DL3028',
    severity: 'warning',
    message: 'Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`',
    check(ctx, report) {
      runsWhere(
        ctx,
        report,
        (c) => isGemInstall(c) && !hasOption(c, 'v', ['version'], gemSpec) && packages(actionArgs(c, gemSpec)).some((p) => !p.includes(':') && !p.endsWith('.gem') && !isPath(p)),
      );
    },
  },
  {
    code: 'DL3030',
    severity: 'warning',
    message: 'Use the -y switch to avoid manual input `yum install -y <package>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isYum(c, ['install', 'groupinstall', 'localinstall', 'reinstall']) && !hasOption(c, 'y', ['assumeyes'], rpmSpec));
    },
  },
  {
    code: 'DL3032',
    severity: 'warning',
    message: '`yum clean all` missing after yum command.',
    check(ctx, report) {
      missingCleanup(ctx, report, {
        installs: (c) => isYum(c, ['install', 'groupinstall', 'localinstall', 'reinstall']),
        cleans: (c) => (isYum(c, ['clean']) && positionals(c, rpmSpec)[1]?.value === 'all') || removes(c, ['/var/cache/yum']),
        cacheDirs: ['/var/cache/yum'],
      });
    },
  },
  {
    code: 'DL3033',
    severity: 'warning',
    message: 'Specify version with `yum install -y <package>-<version>`.',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isYum(c, ['install']) && packages(actionArgs(c, rpmSpec)).some((p) => !rpmVersioned(p)));
    },
  },
  {
    code: 'DL3034',
    severity: 'warning',
    message: 'Non-interactive switch missing from `zypper` command: `zypper install -y`',
    check(ctx, report) {
      runsWhere(
        ctx,
        report,
        (c) =>
          isZypper(c, ['install', 'in', 'remove', 'rm', 'source-install', 'si', 'patch', 'update', 'up', 'dist-upgrade', 'dup']) &&
          !hasOption(c, 'ny', ['non-interactive', 'no-confirm'], zypperSpec),
      );
    },
  },
  {
    code: 'DL3035',
    severity: 'warning',
    message: 'Do not use `zypper dist-upgrade`.',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isZypper(c, ['dist-upgrade', 'dup']));
    },
  },
  {
    code: 'DL3036',
    severity: 'warning',
    message: '`zypper clean` missing after zypper use.',
    check(ctx, report) {
      missingCleanup(ctx, report, {
        installs: (c) => isZypper(c, ['install', 'in']),
        cleans: (c) => isZypper(c, ['clean', 'cc']) || removes(c, ['/var/cache/zypp']),
        cacheDirs: ['/var/cache/zypp'],
      });
    },
  },
  {
    code: 'DL3037',
    severity: 'warning',
    message: 'Specify version with `zypper install -y <package>=<version>`.',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isZypper(c, ['install', 'in']) && packages(actionArgs(c, zypperSpec)).some((p) => !/[=<>]/.test(p) && !p.endsWith('.rpm') && !isPath(p)));
    },
  },
  {
    code: 'DL3038',
    severity: 'warning',
    message: 'Use the -y switch to avoid manual input `dnf install -y <package>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isDnf(c, ['install', 'groupinstall', 'localinstall', 'reinstall']) && !hasOption(c, 'y', ['assumeyes'], rpmSpec));
    },
  },
  {
    code: 'DL3040',
    severity: 'warning',
    message: '`dnf clean all` missing after dnf command.',
    check(ctx, report) {
      missingCleanup(ctx, report, {
        installs: (c) => isDnf(c, ['install', 'groupinstall', 'localinstall', 'reinstall']),
        cleans: (c) => (isDnf(c, ['clean']) && positionals(c, rpmSpec)[1]?.value === 'all') || removes(c, ['/var/cache/dnf', '/var/cache/yum']),
        cacheDirs: ['/var/cache/dnf', '/var/cache/yum'],
      });
    },
  },
  {
    code: 'DL3041',
    severity: 'warning',
    message: 'Specify version with `dnf install -y <package>-<version>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isDnf(c, ['install']) && packages(actionArgs(c, rpmSpec)).some((p) => !rpmVersioned(p) && !p.startsWith('@')));
    },
  },
  {
    code: 'DL3042',
    severity: 'warning',
    message: 'Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`',
    check(ctx, report) {
      for (const r of parsedRuns(ctx)) {
        const envSet = stageChain(ctx, r.stage).some((s) =>
          s.instructions.some((i) => i.line < r.instr.line && ((i.kind === 'env' && i.pairs.some((kv) => kv.key === 'PIP_NO_CACHE_DIR')) || (i.kind === 'arg' && i.args.some((a) => a.key === 'PIP_NO_CACHE_DIR')))),
        );
        if (envSet || mountsOver(r, '/root/.cache/pip') || mountsOver(r, '/root/.cache')) continue;
        const bad = r.commands.some((c) => {
          const pip = pipInstall(c);
          return pip !== undefined && !hasOption(pip, '', ['no-cache-dir'], pipSpec) && !/^(0|false|off)$/i.test(pip.args.find((a) => a.value?.startsWith('--cache-dir='))?.value ?? 'x');
        });
        if (bad) report(r.instr.line);
      }
    },
  },
  {
    code: 'DL3060',
    severity: 'info',
    message: '`yarn cache clean` missing after `yarn install` was run.',
    check(ctx, report) {
      missingCleanup(ctx, report, {
        installs: isYarnInstall,
        cleans: (c) => isAction(c, ['yarn'], ['cache'], {}) && positionals(c)[1]?.value === 'clean',
        cacheDirs: ['/usr/local/share/.cache/yarn', '/root/.cache/yarn', '/root/.yarn'],
      });
    },
  },
  {
    code: 'DL3062',
    severity: 'warning',
    message: 'Pin versions in go install. Instead of `go install <package>` use `go install <package>@<version>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c) => isGoInstall(c) && packages(actionArgs(c, goSpec)).some((p) => !p.includes('@') && !isPath(p) && !p.startsWith('.')));
    },
  },
];

export { isApt, isApk, isDnf, isYum, isNpmInstall, isYarnInstall };
