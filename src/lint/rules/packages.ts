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

/** `pipx install …`: installs from PyPI as pip does, so versions are pinned the same way. */
function pipxInstall(c: ShellCommand): ShellCommand | undefined {
  return c.name === 'pipx' && positionals(c, pipSpec)[0]?.value === 'install' ? c : undefined;
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

/** RUN --mount=type=cache|tmpfs whose target contains `fragment` (hadolint's hasCacheOrTmpfsMountWith). */
export function mountsWith(run: RunContext, fragment: string): boolean {
  return run.instr.mounts.some((m) => {
    const fields = Object.fromEntries(m.split(',').map((kv) => [kv.slice(0, kv.indexOf('=') < 0 ? kv.length : kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const type = fields.type ?? 'bind';
    const target = fields.target ?? fields.dst ?? fields.destination ?? '';
    return (type === 'cache' || type === 'tmpfs') && target.includes(fragment);
  });
}

/** Reports each RUN once when one of its commands matches. */
function runsWhere(ctx: LintContext, report: Report, match: (c: ShellCommand, run: RunContext) => boolean): void {
  for (const r of parsedRuns(ctx)) if (r.commands.some((c) => match(c, r))) report(r.instr.line);
}

/**
 * The files a RUN leaves reach an image: it is in the last stage or in a stage a FROM builds on (as
 * hadolint judges, not transitively), or it is an ONBUILD RUN, which runs in whatever image is built
 * FROM this one.
 */
function shipsFiles(ctx: LintContext, r: RunContext): boolean {
  if (r.onbuild || r.stage === ctx.stages.length - 1) return true;
  const name = ctx.stages[r.stage]?.name;
  return name !== undefined && ctx.stages.some((s) => s.from?.image.toLowerCase() === name);
}

/** RUNs that install with a package manager but do not clean its cache in the same RUN. */
function missingCleanup(
  ctx: LintContext,
  report: Report,
  opts: { installs: (c: ShellCommand) => boolean; cleans: (c: ShellCommand) => boolean; cacheDirs: string[]; shippedOnly?: boolean },
): void {
  for (const r of parsedRuns(ctx)) {
    if (opts.shippedOnly && !shipsFiles(ctx, r)) continue;
    const first = r.commands.findIndex(opts.installs);
    if (first < 0) continue;
    // A clean before the install cleans nothing the install downloads.
    if (r.commands.slice(first + 1).some(opts.cleans)) continue;
    if (opts.cacheDirs.some((d) => mountsOver(r, d))) continue;
    report(r.instr.line);
  }
}

const removes = (c: ShellCommand, prefixes: string[]) => c.name === 'rm' && c.args.some((a) => a.value !== undefined && prefixes.some((p) => a.value!.startsWith(p)));
/**
 * The gems `gem install` names: words before `--` (after it come the gem's build options), without
 * options; an option gem does not list as a switch is taken to consume the next word, as hadolint does.
 */
function gems(c: ShellCommand): string[] {
  const out: string[] = [];
  const args = c.args.map((a) => a.value);
  const end = args.indexOf('--');
  const words = end < 0 ? args : args.slice(0, end);
  const switches = new Set(['--no-document', '--no-doc', '--no-ri', '--no-rdoc', '--conservative', '--force', '-f', '--user-install', '--minimal-deps', '--prerelease', '--pre', '-N', '--development', '--ignore-dependencies', '--local', '-l', '--remote', '-r', '--both', '-b', '--quiet', '-q', '--verbose', '-V', '--clear-sources', '--no-user-install', '--default', '--explain', '--lock', '--suggestions', '--vendor', '--env-shebang', '-E', '--no-env-shebang', '--wrappers', '--no-wrappers', '--format-executable', '--no-format-executable', '--post-install-message', '--no-post-install-message']);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === undefined || w === '') continue;
    if (w.startsWith('-')) {
      if (!w.includes('=') && !switches.has(w) && !/^-[a-zA-Z]{2,}$/.test(w)) i++;
      continue;
    }
    out.push(w);
  }
  return out.slice(out.findIndex((w) => w === 'install' || w === 'i') + 1);
}

/**
 * `yum|dnf install` of a package without a version (`name-1.2`), or `… module install` of a module
 * without a stream (`name:1`). A package named through a variable is pinned when the variable is an
 * ENV of the stage (or a stage it is built on) or an ARG: its value is the build's to give.
 */
function rpmUnpinned(ctx: LintContext, r: RunContext, c: ShellCommand, is: (c: ShellCommand, sub: string[]) => boolean): boolean {
  const words = positionals(c, rpmSpec);
  if (is(c, ['module'])) return words[1]?.value === 'install' && words.slice(2).some((w) => w.value !== undefined && !w.value.includes(':'));
  if (!is(c, ['install'])) return false;
  const defined = new Set(ctx.dockerfile.metaArgs.flatMap((a) => a.args.map((kv) => kv.key)));
  for (const s of stageChain(ctx, r.stage)) {
    for (const i of s.instructions) {
      if (i.kind === 'env') for (const kv of i.pairs) defined.add(kv.key);
      if (i.kind === 'arg') for (const a of i.args) defined.add(a.key);
    }
  }
  return words.slice(1).some((w) => {
    if (w.value !== undefined) return !rpmVersioned(w.value) && !w.value.startsWith('@');
    const names = [...w.text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
    return names.length > 0 && !names.some((n) => defined.has(n));
  });
}

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
      // The lists matter in the image built and in a stage a later FROM builds on; a stage only copied
      // from never ships them. An ONBUILD RUN runs in whatever image is built FROM this one, so its
      // lists always ship. (hadolint: the last stage or a stage named in a FROM; not transitively.)
      for (const r of parsedRuns(ctx)) {
        if (!shipsFiles(ctx, r) || !r.commands.some((c) => isApt(c, ['update']) || isAction(c, ['apt', 'aptitude'], ['update'], aptSpec))) continue;
        if (r.commands.some((c) => removes(c, ['/var/lib/apt/lists']))) continue;
        // A cache or tmpfs mount of the lists, or of a directory above them (/var/lib/apt), keeps them
        // out of the layer. hadolint also wants /var/cache/apt mounted beside /var/lib/apt, but that
        // directory holds .deb files, not lists: with /var/lib/apt on a cache mount BuildKit leaves no
        // list in the layer for this rule to ask to delete (2 hadolint spec cases, left as they are).
        if (mountsOver(r, '/var/lib/apt/lists')) continue;
        report(r.instr.line);
      }
    },
  },
  {
    code: 'DL3013',
    severity: 'warning',
    message: 'Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`',
    check(ctx, report) {
      // A VCS URL is pinned by `@ref`; any other URL or path names one file; a constraints file pins all.
      const vcs = /^(git|hg|svn|bzr)(\+|:|$)/;
      const pinned = (p: string) =>
        /(==|>=|<=|~=|!=|<|>)/.test(p) || (vcs.test(p) ? p.includes('@') : isPath(p) || p.includes('/') || /\.(whl|tar\.gz|zip|tgz)$/.test(p));
      runsWhere(ctx, report, (c) => {
        const pip = pipInstall(c) ?? pipxInstall(c);
        // With a requirements file or the project itself (`.`) pip installs what they pin.
        if (!pip || hasOption(pip, 'c', ['constraint'], pipSpec) || hasOption(pip, 'r', ['requirement'], pipSpec) || actionArgs(pip, pipSpec).some((w) => w.value === '.')) return false;
        return packages(actionArgs(pip, pipSpec)).some((p) => !pinned(p));
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
      // A git URL is pinned by `#commit` or `#semver:…` only (the `@` in it is a user name).
      const pinned = (p: string) =>
        /^git(\+\w+)?:\/\//.test(p) ? p.includes('#') : p.lastIndexOf('@') > 0 || isPath(p) || /^(github|gitlab|bitbucket|gist|file|https?):/.test(p) || /\.(tgz|tar\.gz|tar)$/.test(p);
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
        (c) => isGemInstall(c) && !hasOption(c, 'v', ['version'], gemSpec) && gems(c).some((p) => !p.includes(':') && !p.endsWith('.gem') && !isPath(p)),
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
      runsWhere(ctx, report, (c, r) => rpmUnpinned(ctx, r, c, isYum));
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
      // Per program (dnf, microdnf): a clean must come after its first install or upgrade; `rm -rf`
      // of the cache counts for both. dnf5 keeps its cache in /var/cache/libdnf5.
      const installs = ['install', 'in', 'upgrade', 'up', 'upgrade-minimal', 'up-min', 'reinstall', 'rei', 'groupinstall', 'localinstall'];
      for (const r of parsedRuns(ctx)) {
        if (mountsWith(r, '/var/cache/libdnf5') || mountsWith(r, '.cache/libdnf5') || mountsOver(r, '/var/cache/dnf')) continue;
        const forgot = ['dnf', 'microdnf'].some((name) => {
          const first = r.commands.findIndex((c) => c.name === name && isDnf(c, installs));
          if (first < 0) return false;
          return !r.commands.slice(first + 1).some((c) => (c.name === name && isDnf(c, ['clean'])) || (c.name === 'rm' && removes(c, ['/var/cache/'])));
        });
        if (forgot) report(r.instr.line);
      }
    },
  },
  {
    code: 'DL3041',
    severity: 'warning',
    message: 'Specify version with `dnf install -y <package>-<version>`',
    check(ctx, report) {
      runsWhere(ctx, report, (c, r) => rpmUnpinned(ctx, r, c, isDnf));
    },
  },
  {
    code: 'DL3042',
    severity: 'warning',
    message: 'Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`',
    check(ctx, report) {
      for (const r of parsedRuns(ctx)) {
        // PIP_NO_CACHE_DIR turns the cache off when true (pip reads 1, yes, on, true), in ENV, ARG or
        // the RUN itself (`PIP_NO_CACHE_DIR=1 pip …`, `export PIP_NO_CACHE_DIR=1`).
        const truthy = (v: string | undefined) => v !== undefined && /^["']?(1|yes|on|true)["']?$/i.test(v);
        const envSet = stageChain(ctx, r.stage).some((s) =>
          s.instructions.some((i) => i.line < r.instr.line && ((i.kind === 'env' && i.pairs.some((kv) => kv.key === 'PIP_NO_CACHE_DIR' && truthy(kv.value))) || (i.kind === 'arg' && i.args.some((a) => a.key === 'PIP_NO_CACHE_DIR' && truthy(a.value))))),
        );
        const setHere = /(^|[\s;&|(])PIP_NO_CACHE_DIR=["']?(1|yes|on|true)\b/i.test(r.script);
        if (envSet || setHere || mountsOver(r, '/root/.cache/pip') || mountsOver(r, '/root/.cache')) continue;
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
        shippedOnly: true,
      });
    },
  },
  {
    code: 'DL3062',
    severity: 'warning',
    message: 'Pin versions in go install. Instead of `go install <package>` use `go install <package>@<version>`',
    check(ctx, report) {
      // `go install`, `go get` (also `-tool`) and `go run` fetch a module at the version named after @;
      // @latest and @none name none. Only `go run`'s first word is a package, the rest are its arguments.
      const pinned = (p: string) => p.startsWith('.') || p.startsWith('/') || (p.includes('@') && !/@(latest|none)$/.test(p));
      runsWhere(ctx, report, (c) => {
        if (c.name !== 'go') return false;
        const words = packages(positionals(c, goSpec)).filter((w) => !w.startsWith('-'));
        if (words[0] === 'run') return words[1] !== undefined && !pinned(words[1]);
        if (words[0] !== 'install' && words[0] !== 'get') return false;
        return words.slice(1).filter((w) => w !== 'tool').some((p) => !pinned(p));
      });
    },
  },
];

export { isApt, isApk, isDnf, isYum, isNpmInstall, isYarnInstall };
