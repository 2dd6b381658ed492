// hadolint's rules about instructions themselves (no shell involved): ids, default severities and
// messages as hadolint has them, so its documentation and existing configurations apply.

import type { CopyInstruction, FromInstruction, Instruction } from '../../dockerfile/index.js';
import { parseReference, DefaultDomain } from '../../reference/reference.js';
import { stageChain, stageLine, type LintContext, type Rule } from '../rule.js';

const archiveExtensions = [
  '.tar', '.tar.bz2', '.tb2', '.tbz', '.tbz2', '.tar.gz', '.tgz', '.tpz', '.tar.lz', '.tar.lzma', '.tlz',
  '.tar.xz', '.txz', '.tar.Z', '.tZ', '.tar.zst', '.tzst', '.gz', '.bz2', '.xz', '.zst',
];

export function isArchive(path: string): boolean {
  return archiveExtensions.some((e) => path.endsWith(e));
}

export function isUrl(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || s.startsWith('git@');
}

/** Expands $NAME and ${NAME} from the global ARG defaults; undefined when something stays unresolved. */
export function resolveImageName(ctx: LintContext, image: string): string | undefined {
  if (!image.includes('$')) return image;
  const defaults = new Map<string, string>();
  for (const a of ctx.dockerfile.metaArgs) for (const kv of a.args) if (kv.value !== undefined) defaults.set(kv.key, kv.value);
  let unresolved = false;
  const out = image.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string, dflt: string | undefined, b: string) => {
    const v = defaults.get(a ?? b) ?? dflt;
    if (v === undefined) unresolved = true;
    return v ?? '';
  });
  return unresolved || out === '' ? undefined : out;
}

/** The FROM refers to an external image (not scratch, not an earlier stage); false without a FROM. */
export function isExternalImage(ctx: LintContext, from: FromInstruction | undefined, stageIndex: number): from is FromInstruction {
  if (!from) return false;
  const image = from.image.toLowerCase();
  if (image === 'scratch') return false;
  return !ctx.stages.slice(0, stageIndex).some((s) => s.name === image);
}

/** A word as BuildKit's lexer reads it in COPY and ADD: surrounding quotes removed. */
const unquote = (s: string) => s.replace(/^"(.*)"$|^'(.*)'$/, '$1$2');

const isRootUser = (user: string) => /^(root|0)(:.*)?$/.test(user.trim());

function allInstructions(ctx: LintContext): Instruction[] {
  return ctx.dockerfile.instructions;
}

export const instructionRules: Rule[] = [
  {
    code: 'DL3000',
    severity: 'error',
    message: 'Use absolute WORKDIR',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) {
        if (i.kind !== 'workdir') continue;
        const p = i.path.replace(/^["']|["']$/g, '');
        if (p.startsWith('/') || p.startsWith('$') || /^[A-Za-z]:[\\/]/.test(p)) continue;
        report(i.line);
      }
    },
  },
  {
    code: 'DL3002',
    severity: 'warning',
    message: 'Last USER should not be root',
    check(ctx, report) {
      // Only the image matters: a build stage nothing is built FROM may well need root (hadolint
      // reports those too). The image's user is the last USER of its stage or, without one, of the
      // stage it is built FROM, and so on.
      const last = ctx.stages[ctx.stages.length - 1];
      if (!last) return;
      for (const s of stageChain(ctx, last.index)) {
        const users = s.instructions.filter((i) => i.kind === 'user');
        const u = users[users.length - 1];
        if (!u || u.kind !== 'user') continue;
        if (isRootUser(u.user)) report(u.line);
        return;
      }
    },
  },
  {
    code: 'DL3006',
    severity: 'warning',
    message: 'Always tag the image version explicitly',
    check(ctx, report) {
      for (const s of ctx.stages) {
        if (!isExternalImage(ctx, s.from, s.index)) continue;
        const name = resolveImageName(ctx, s.from.image);
        if (name === undefined) continue;
        try {
          const ref = parseReference(name);
          if (!ref.tag && !ref.digest) report(s.from.line);
        } catch {
          /* not a reference kiln can read: the build says so */
        }
      }
    },
  },
  {
    code: 'DL3007',
    severity: 'warning',
    message: 'Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag',
    check(ctx, report) {
      for (const s of ctx.stages) {
        if (!isExternalImage(ctx, s.from, s.index)) continue;
        const name = resolveImageName(ctx, s.from.image);
        if (name === undefined) continue;
        try {
          const ref = parseReference(name);
          if (ref.tag === 'latest' && !ref.digest) report(s.from.line);
        } catch {
          /* reported by the build */
        }
      }
    },
  },
  {
    code: 'DL3011',
    severity: 'error',
    message: 'Valid UNIX ports range from 0 to 65535',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) {
        if (i.kind !== 'expose') continue;
        for (const p of i.ports) {
          if (p.includes('$')) continue;
          const nums = p.replace(/\/\w+$/, '').split('-');
          if (nums.some((n) => !/^\d+$/.test(n) || Number(n) > 65535)) {
            report(i.line);
            break;
          }
        }
      }
    },
  },
  {
    code: 'DL3012',
    severity: 'error',
    message: 'Multiple `HEALTHCHECK` instructions',
    check(ctx, report) {
      for (const s of ctx.stages) {
        const hc = s.instructions.filter((i) => i.kind === 'healthcheck');
        for (const i of hc.slice(1)) report(i.line);
      }
    },
  },
  {
    code: 'DL3020',
    severity: 'error',
    message: 'Use COPY instead of ADD for files and folders',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) {
        if (i.kind !== 'add') continue;
        if (i.sources.length === 0) continue; // heredocs only
        if (i.sources.map(unquote).every((s) => isUrl(s) || isArchive(s))) continue;
        report(i.line);
      }
    },
  },
  {
    code: 'DL3021',
    severity: 'error',
    message: 'COPY with more than 2 arguments requires the last argument to end with /',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) {
        if (i.kind !== 'copy') continue;
        const dest = unquote(i.dest);
        if (i.sources.length + i.heredocSources.length > 1 && !dest.endsWith('/') && !dest.endsWith('\\')) report(i.line);
      }
    },
  },
  {
    code: 'DL3022',
    severity: 'warning',
    message: '`COPY --from` should reference a previously defined `FROM` alias',
    check(ctx, report) {
      for (const s of ctx.stages) {
        for (const i of s.instructions) {
          if (i.kind !== 'copy' || i.from === undefined) continue;
          const from = i.from.toLowerCase();
          // Stage numbers count FROMs: instructions before the first FROM are no stage to BuildKit.
          if (/^\d+$/.test(from) && Number(from) < ctx.stages.slice(0, s.index).filter((p) => p.from).length) continue;
          if (ctx.stages.slice(0, s.index).some((p) => p.name === from)) continue;
          if (from === s.name) continue; // DL3023's business
          // An image reference (has a registry, a tag or a digest) is a legitimate source.
          if (/[:@/]/.test(from) || from.includes('$')) continue;
          report(i.line);
        }
      }
    },
  },
  {
    code: 'DL3023',
    severity: 'error',
    message: '`COPY --from` cannot reference its own `FROM` alias',
    check(ctx, report) {
      for (const s of ctx.stages) {
        for (const i of s.instructions) {
          if (i.kind === 'copy' && i.from !== undefined && s.name !== undefined && i.from.toLowerCase() === s.name) report(i.line);
        }
      }
    },
  },
  {
    code: 'DL3024',
    severity: 'error',
    message: '`FROM` aliases (stage names) must be unique',
    check(ctx, report) {
      const seen = new Set<string>();
      for (const s of ctx.stages) {
        if (s.name === undefined) continue;
        if (seen.has(s.name) && s.from) report(s.from.line);
        seen.add(s.name);
      }
    },
  },
  {
    code: 'DL3025',
    severity: 'warning',
    message: 'Use arguments JSON notation for CMD and ENTRYPOINT arguments',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) {
        if ((i.kind === 'cmd' || i.kind === 'entrypoint') && i.prependShell && i.cmdLine !== null && i.cmdLine.length > 0) report(i.line);
        if (i.kind === 'healthcheck' && i.test[0] === 'CMD-SHELL') report(i.line);
      }
    },
  },
  {
    code: 'DL3026',
    severity: 'error',
    message: 'Use only an allowed registry in the `FROM image`',
    check(ctx, report) {
      const trusted = ctx.config.trustedRegistries;
      if (trusted.length === 0) return;
      const check = (image: string, line: number) => {
        const name = resolveImageName(ctx, image);
        if (name === undefined) return;
        let domain: string;
        try {
          domain = parseReference(name).domain;
        } catch {
          return;
        }
        const aliases = domain === DefaultDomain ? [domain, 'hub.docker.com', 'index.docker.io', 'registry-1.docker.io'] : [domain];
        if (!trusted.some((glob) => aliases.some((d) => globMatch(glob, d)))) report(line, `Use only an allowed registry in the \`FROM image\` (${domain} is not in ${trusted.join(', ')})`);
      };
      const stageNames = new Set(ctx.stages.flatMap((s) => (s.name === undefined ? [] : [s.name])));
      // An image is also pulled by COPY --from=<image> and RUN --mount=from=<image>.
      const pulled = (from: string) => !stageNames.has(from.toLowerCase()) && !/^\d+$/.test(from) && /[:@/.]/.test(from);
      for (const s of ctx.stages) {
        if (isExternalImage(ctx, s.from, s.index)) check(s.from.image, s.from.line);
        for (const i of s.instructions) {
          if (i.kind === 'copy' && i.from !== undefined && pulled(i.from)) check(i.from, i.line);
          if (i.kind !== 'run') continue;
          for (const m of i.mounts) {
            const from = /(?:^|,)from=([^,]+)/.exec(m)?.[1];
            if (from !== undefined && pulled(from)) check(from, i.line);
          }
        }
      }
    },
  },
  {
    code: 'DL3029',
    severity: 'warning',
    message: 'Do not use --platform flag with FROM',
    check(ctx, report) {
      for (const s of ctx.stages) {
        const p = s.from?.platform;
        if (s.from && p !== undefined && !/BUILDPLATFORM|TARGETPLATFORM/.test(p)) report(s.from.line);
      }
    },
  },
  {
    code: 'DL3044',
    severity: 'error',
    message: 'Do not refer to an environment variable within the same `ENV` statement where it is defined.',
    check(ctx, report) {
      for (const s of ctx.stages) {
        const defined = new Set<string>();
        for (const i of s.instructions) {
          if (i.kind === 'arg') for (const a of i.args) defined.add(a.key);
          if (i.kind !== 'env') continue;
          const here = new Set<string>();
          let hit = false;
          for (const kv of i.pairs) {
            for (const m of kv.value.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
              if (here.has(m[1]!) && !defined.has(m[1]!)) hit = true;
            }
            here.add(kv.key);
          }
          if (hit) report(i.line);
          for (const k of here) defined.add(k);
        }
      }
    },
  },
  {
    code: 'DL3045',
    severity: 'warning',
    message: '`COPY` to a relative destination without `WORKDIR` set.',
    check(ctx, report) {
      for (const s of ctx.stages) {
        // A WORKDIR in a stage this one is built FROM counts.
        let workdir = stageChain(ctx, s.index).slice(1).some((p) => p.instructions.some((i) => i.kind === 'workdir'));
        for (const i of s.instructions) {
          if (i.kind === 'workdir') workdir = true;
          if (i.kind !== 'copy' || workdir) continue;
          const d = i.dest.replace(/^["']|["']$/g, '');
          if (d.startsWith('/') || d.startsWith('$') || /^[A-Za-z]:[\\/]/.test(d)) continue;
          report(i.line);
        }
      }
    },
  },
  {
    code: 'DL3057',
    severity: 'ignore',
    message: '`HEALTHCHECK` instruction missing.',
    check(ctx, report) {
      const last = ctx.stages[ctx.stages.length - 1];
      if (!last) return;
      if (!stageChain(ctx, last.index).some((s) => s.instructions.some((i) => i.kind === 'healthcheck'))) report(stageLine(last));
    },
  },
  {
    code: 'DL3059',
    severity: 'info',
    message: 'Multiple consecutive `RUN` instructions. Consider consolidation.',
    check(ctx, report) {
      for (const s of ctx.stages) {
        let previous: Instruction | undefined;
        for (const i of s.instructions) {
          // RUNs with different mounts or networks cannot simply be merged; nor, as hadolint has it,
          // is a RUN that already chains commands (`a && b`, `a; b`) worth merging with another.
          if (i.kind === 'run' && previous?.kind === 'run' && i.flags.join(' ') === previous.flags.join(' ') && commandCount(ctx, i) < 2 && commandCount(ctx, previous) < 2) report(i.line);
          previous = i;
        }
      }
    },
  },
  {
    code: 'DL3063',
    severity: 'warning',
    message: 'stage name should not be a reserved word',
    check(ctx, report) {
      // `scratch` and `context` mean the empty image and the build context wherever a stage is named.
      for (const s of ctx.stages) if (s.from && (s.name === 'scratch' || s.name === 'context')) report(s.from.line);
    },
  },
  {
    code: 'DL3064',
    severity: 'warning',
    message: 'Potentially sensitive data should not be used in the `ARG` or `ENV` commands',
    check(ctx, report) {
      // By name: the values of ARG and ENV stay in the image's config or history (KL1001 looks at values).
      for (const i of allInstructions(ctx)) {
        const names = i.kind === 'arg' ? i.args.map((a) => a.key) : i.kind === 'env' ? i.pairs.map((kv) => kv.key) : [];
        if (names.some(sensitiveName)) report(i.line);
      }
    },
  },
  {
    code: 'DL3065',
    severity: 'warning',
    message: 'Setting `FROM --platform` to predefined `$TARGETPLATFORM` in is redundant as this is the default behavior',
    check(ctx, report) {
      for (const s of ctx.stages) if (s.from && (s.from.platform === '$TARGETPLATFORM' || s.from.platform === '${TARGETPLATFORM}')) report(s.from.line);
    },
  },
  {
    code: 'DL3066',
    severity: 'info',
    message: 'Non-numeric user-id may not be resolvable by host system',
    check(ctx, report) {
      // A name needs the image's /etc/passwd; a number works everywhere (a volume's owner on the host).
      const args = new Set<string>();
      for (const i of allInstructions(ctx)) {
        if (i.kind === 'arg') for (const a of i.args) args.add(a.key);
        if (i.kind !== 'user') continue;
        const uid = i.user.split(':')[0]!;
        if (/^\d*$/.test(uid)) continue;
        if ([...args].some((a) => uid.includes('${' + a + '}') || uid.includes('$' + a))) continue;
        report(i.line);
      }
    },
  },
  {
    code: 'DL3067',
    severity: 'warning',
    message: 'Do not copy an entire filesystem from another stage',
    check(ctx, report) {
      const root = (p: string) => p.replace(/^["']|["']$/g, '') === '/';
      for (const i of allInstructions(ctx)) if (i.kind === 'copy' && i.from !== undefined && root(i.dest) && i.sources.some(root)) report(i.line);
    },
  },
  {
    code: 'DL4000',
    severity: 'error',
    message: 'MAINTAINER is deprecated',
    check(ctx, report) {
      for (const i of allInstructions(ctx)) if (i.kind === 'maintainer') report(i.line);
    },
  },
  {
    code: 'DL4003',
    severity: 'warning',
    message: 'Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect',
    check(ctx, report) {
      for (const s of ctx.stages) for (const i of s.instructions.filter((x) => x.kind === 'cmd').slice(1)) report(i.line);
    },
  },
  {
    code: 'DL4004',
    severity: 'error',
    message: 'Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect',
    check(ctx, report) {
      for (const s of ctx.stages) for (const i of s.instructions.filter((x) => x.kind === 'entrypoint').slice(1)) report(i.line);
    },
  },
  {
    code: 'DL3010',
    severity: 'info',
    message: 'Use ADD for extracting archives into an image',
    check(ctx, report) {
      // A COPY of an archive that a later RUN of the same stage unpacks with tar.
      for (const s of ctx.stages) {
        const copied: { instr: CopyInstruction; names: string[] }[] = [];
        for (const i of s.instructions) {
          if (i.kind === 'copy' && i.from === undefined) {
            // The archive is found by its name where it was copied to: the destination's when that
            // names a file, else the source's (Windows paths too; BuildKit splits COPY's words at
            // blanks even inside quotes, so a quoted path with a blank leaves a stray quote).
            const base = (p: string) => p.replace(/["']/g, '').split(/[\\/]/).pop()!;
            const names = i.sources.filter((p) => isArchive(unquote(p))).map(base);
            if (names.length && isArchive(base(i.dest))) names.push(base(i.dest));
            if (names.length) copied.push({ instr: i, names });
          }
        }
        if (copied.length === 0) continue;
        for (const run of ctx.runs.filter((r) => r.stage === s.index && r.shell)) {
          for (const cmd of run.shell!.commands) {
            if (cmd.name !== 'tar') continue;
            const first = cmd.args[0]?.value ?? '';
            const extracting = cmd.args.some((a) => a.value === '--extract' || a.value === '--get' || /^-[a-zA-Z]*x/.test(a.value ?? '')) || /^[a-zA-Z]*x[a-zA-Z]*$/.test(first);
            if (!extracting) continue;
            for (const c of copied) {
              if (c.instr.line < run.instr.line && cmd.args.some((a) => a.value !== undefined && c.names.some((n) => a.value!.endsWith(n)))) report(c.instr.line);
            }
          }
        }
      }
    },
  },
];

/**
 * A variable name that says it holds a credential: it names a password, secret, token, private or API
 * key, or is one of the cloud providers' well-known key names that say none of that.
 */
function sensitiveName(name: string): boolean {
  const n = name.toUpperCase();
  if (/PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|API_?KEY|CLIENT_KEY|ACCESS_KEY|USERNAME|CREDENTIAL/.test(n)) return true;
  return ['APPLICATION_KEY', 'CI_DEPLOY_USER', 'HEROKU_API_USER', 'OKTA_OAUTH2_CLIENTID', 'AZURE_CLIENT_ID', 'ARM_CLIENT_ID'].includes(n);
}

/** How many simple commands a RUN's script runs itself (0 when its shell was not parsed). */
function commandCount(ctx: LintContext, run: Instruction): number {
  return ctx.runs.find((r) => r.instr === run)?.shell?.commands.filter((c) => !c.wrapped).length ?? 0;
}

/** Shell-style glob (`*`, `?`) over a whole string, as hadolint matches trustedRegistries. */
export function globMatch(glob: string, s: string): boolean {
  const re = new RegExp('^' + glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
  return re.test(s);
}
