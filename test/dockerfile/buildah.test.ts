// Differential test: the image config kiln's frontend computes for metadata-only Dockerfiles (FROM
// scratch, nothing executed) against the config `buildah bud` writes for the same files. buildah is
// an independent implementation with the classic builder's semantics; where those differ from
// BuildKit's (which kiln follows) the difference is listed in the case with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dispatchStage, parseDockerfile, planBuild, type StageProgram } from '../../src/dockerfile/index.js';
import type { ContainerConfig } from '../../src/oci/types.js';

const run = promisify(execFile);
const buildah = '/usr/bin/buildah';

interface Accepted {
  field: keyof Compared;
  kiln: unknown;
  buildah: unknown;
  reason: string;
}

interface DiffCase {
  name: string;
  dockerfile: string;
  buildArgs?: Record<string, string>;
  target?: string;
  accepted?: Accepted[];
}

const classicShellForm = 'buildah (like the classic builder in this version) wraps CMD/ENTRYPOINT shell forms in /bin/sh -c even after SHELL; BuildKit uses the SHELL';

const cases: DiffCase[] = [
  { name: 'ENV key=value pairs, quotes and the legacy form', dockerfile: 'FROM scratch\nENV A=1 B="x y" C=\'q r\'\nENV D hello  world\nENV E=$A-2 F=${B}\n' },
  { name: 'ENV does not see its own new values', dockerfile: 'FROM scratch\nENV A=1\nENV A=2 B=$A\nENV C=$A\n' },
  { name: 'ENV replaces PATH in place', dockerfile: 'FROM scratch\nENV X=1\nENV PATH=/opt/bin:$PATH\n' },
  { name: 'LABEL several pairs with quotes and continuation', dockerfile: 'FROM scratch\nLABEL a=1 "b c"="d e" \\\n      f=\'g h\'\nLABEL legacy some text\n' },
  { name: 'CMD exec form', dockerfile: 'FROM scratch\nCMD ["echo", "hi there"]\n' },
  { name: 'CMD shell form', dockerfile: 'FROM scratch\nCMD echo "$HOME" && exit 0\n' },
  { name: 'ENTRYPOINT exec form with CMD after it', dockerfile: 'FROM scratch\nENTRYPOINT ["/bin/app", "-v"]\nCMD ["--help"]\n' },
  { name: 'CMD before ENTRYPOINT in the same stage is kept', dockerfile: 'FROM scratch\nCMD ["--help"]\nENTRYPOINT ["/bin/app"]\n' },
  { name: 'ENTRYPOINT shell form', dockerfile: 'FROM scratch\nENTRYPOINT exec /bin/app --flag\n' },
  { name: 'WORKDIR absolute, relative and with variables', dockerfile: 'FROM scratch\nENV BASE=/srv\nWORKDIR $BASE\nWORKDIR app\nWORKDIR ../data\n' },
  { name: 'USER forms', dockerfile: 'FROM scratch\nENV U=builder\nUSER ${U}:staff\n' },
  {
    name: 'EXPOSE ports, protocols and ranges',
    dockerfile: 'FROM scratch\nEXPOSE 80 443/tcp 53/udp 8000-8002 9000/sctp\n',
    accepted: [
      {
        field: 'ExposedPorts',
        kiln: ['443/tcp', '53/udp', '80/tcp', '8000/tcp', '8001/tcp', '8002/tcp', '9000/sctp'],
        buildah: ['443/tcp', '53/udp', '80/tcp', '8000-8002/tcp', '9000/sctp'],
        reason: 'buildah records a port range as one key; BuildKit (like docker) expands it into one entry per port',
      },
    ],
  },
  { name: 'EXPOSE with a variable', dockerfile: 'FROM scratch\nENV P=8080\nEXPOSE $P ${P}/udp\n' },
  { name: 'VOLUME JSON and plain forms', dockerfile: 'FROM scratch\nVOLUME ["/data", "/logs"]\nVOLUME /cache /tmp/x\n' },
  { name: 'STOPSIGNAL', dockerfile: 'FROM scratch\nSTOPSIGNAL SIGQUIT\n' },
  {
    name: 'HEALTHCHECK CMD with every duration flag',
    dockerfile: 'FROM scratch\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD curl -f http://localhost/ || exit 1\n',
  },
  { name: 'HEALTHCHECK exec form', dockerfile: 'FROM scratch\nHEALTHCHECK CMD ["/bin/check", "--quick"]\n' },
  { name: 'HEALTHCHECK NONE', dockerfile: 'FROM scratch\nHEALTHCHECK CMD true\nHEALTHCHECK NONE\n' },
  {
    name: 'SHELL and a later shell-form CMD',
    dockerfile: 'FROM scratch\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nCMD echo hi\n',
    accepted: [{ field: 'Cmd', kiln: ['/bin/bash', '-o', 'pipefail', '-c', 'echo hi'], buildah: ['/bin/sh', '-c', 'echo hi'], reason: classicShellForm }],
  },
  { name: 'ONBUILD triggers are recorded as written', dockerfile: 'FROM scratch\nONBUILD RUN make  install\nONBUILD COPY . /src\n' },
  { name: 'ARG with a build arg feeds ENV and LABEL', dockerfile: 'FROM scratch\nARG VERSION=dev\nENV VERSION=$VERSION\nLABEL version=${VERSION}\n', buildArgs: { VERSION: '1.2.3' } },
  { name: 'ARG default when no build arg is given', dockerfile: 'FROM scratch\nARG VERSION=dev\nARG EMPTY\nENV VERSION=$VERSION E=${EMPTY:-none}\n' },
  { name: 'global ARG is visible only after re-declaration', dockerfile: 'ARG G=global\nFROM scratch\nENV BEFORE=${G:-unset}\nARG G\nENV AFTER=$G\n' },
  { name: 'ENV overrides an earlier ARG', dockerfile: 'FROM scratch\nARG V\nENV V=from-env\nENV W=$V\n', buildArgs: { V: 'from-arg' } },
  // buildah's lexer knows only the :- and :+ operators (it rejects ${v-w}); the others are in the corpus.
  { name: 'expansion operators :- and :+', dockerfile: 'FROM scratch\nENV SET=1 EMPTY=\nENV A=${SET:-d} B=${EMPTY:-d} C=${UNSET:-d} E=${SET:+a} F=${EMPTY:+a} G=${UNSET:+a}\n' },
  { name: 'quotes and escapes in values', dockerfile: 'FROM scratch\nENV A="say \\"hi\\"" B=\'$HOME\' C=\\$HOME D=a\\ b\n' },
  {
    name: 'escape directive with a backtick',
    dockerfile: '# escape=`\nFROM scratch\nENV A=`$B C=c:\\dir D=1 `\n    E=2\n',
    accepted: [
      {
        field: 'Env',
        kiln: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=$B', 'C=c:\\dir', 'D=1', 'E=2'],
        buildah: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=`', 'C=c:dir', 'D=1', 'E=2'],
        reason: 'buildah honours the escape directive for line continuations only and expands words with a backslash escape; BuildKit expands with the directive\'s token',
      },
    ],
  },
  { name: 'line continuations with comment and empty lines', dockerfile: 'FROM scratch\nENV A=1 \\\n# a comment\n    B=2 \\\n\n    C=3\n' },
  { name: 'lower-case instructions', dockerfile: 'from scratch\nenv a=1\nlabel b=2\ncmd ["x"]\n' },
  { name: 'MAINTAINER sets the author', dockerfile: 'FROM scratch\nMAINTAINER Jane Doe <jane@example.com>\n' },
  {
    name: 'multi-stage: the target stage inherits its base stage',
    dockerfile: 'FROM scratch AS base\nENV A=1\nLABEL from=base\nEXPOSE 80\nFROM base AS final\nENV B=2\nFROM scratch AS other\nENV C=3\n',
    target: 'final',
  },
  {
    name: 'multi-stage: ONBUILD of a base stage runs in the stage built from it',
    dockerfile: 'FROM scratch AS base\nONBUILD ENV TRIGGERED=yes\nONBUILD LABEL t=1\nFROM base\nENV OWN=1\n',
  },
];

/** The config fields compared. */
interface Compared {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: string[];
  Volumes?: string[];
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: unknown;
  Shell?: string[];
  OnBuild?: string[];
  author?: string;
}

/** Empty values are absent (Go's omitempty on one side, explicit empties on the other). */
function normalize(c: ContainerConfig, author: string | undefined): Compared {
  const out: Compared = {};
  const list = (v: unknown) => (Array.isArray(v) && v.length > 0 ? (v as string[]) : undefined);
  const keys = (v: unknown) => (v && typeof v === 'object' && Object.keys(v).length > 0 ? Object.keys(v).sort() : undefined);
  const set = <K extends keyof Compared>(k: K, v: Compared[K] | undefined | '') => {
    if (v !== undefined && v !== '') out[k] = v;
  };
  set('Env', list(c.Env));
  set('Cmd', list(c.Cmd));
  set('Entrypoint', list(c.Entrypoint));
  set('WorkingDir', c.WorkingDir);
  set('User', c.User);
  set('ExposedPorts', keys(c.ExposedPorts));
  set('Volumes', keys(c.Volumes));
  const labels = { ...(c.Labels ?? {}) };
  delete labels['io.buildah.version'];
  if (Object.keys(labels).length > 0) out.Labels = labels;
  set('StopSignal', c.StopSignal);
  if (c.Healthcheck) out.Healthcheck = c.Healthcheck;
  set('Shell', list(c.Shell));
  set('OnBuild', list(c.OnBuild));
  set('author', author);
  return out;
}

function kilnConfig(dc: DiffCase): Compared {
  const df = parseDockerfile(dc.dockerfile);
  const buildArgs = dc.buildArgs ?? {};
  const plan = planBuild(df, { buildArgs, target: dc.target, platform: { os: 'linux', architecture: 'amd64' } });
  const programs: StageProgram[] = [];
  for (const s of plan.stages) {
    if (!s.used) continue;
    assert.notEqual(s.base.kind, 'image', 'differential cases are FROM scratch or FROM a stage');
    const program = s.base.kind === 'stage' ? programs[s.base.index] : undefined;
    programs[s.index] = dispatchStage(plan, s.index, { config: program?.config, program }, { buildArgs });
  }
  const config = programs[plan.target]!.config;
  const c = normalize(config.config ?? {}, config.author);
  // BuildKit's empty image has WorkingDir "/", the classic builder's none: the same directory.
  if (c.WorkingDir === '/') delete c.WorkingDir;
  return c;
}

async function pool<T, R>(items: T[], size: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const available = existsSync(buildah);

test('kiln computes the same image config as buildah for metadata-only Dockerfiles', { skip: !available && 'buildah is not installed', timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-buildah-'));
  const storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs'];
  try {
    const built = await pool(cases, 4, async (dc, i) => {
      const file = join(dir, `Dockerfile.${i}`);
      await writeFile(file, dc.dockerfile);
      const args = [...storage, 'bud', '--format', 'docker', '--layers=false', '--isolation', 'chroot', '-q', '-f', file, '-t', `kiln-diff-${i}`];
      for (const [k, v] of Object.entries(dc.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
      if (dc.target) args.push('--target', dc.target);
      args.push(dir);
      try {
        await run(buildah, args);
        const { stdout } = await run(buildah, [...storage, 'inspect', '--type', 'image', `kiln-diff-${i}`], { maxBuffer: 16 << 20 });
        const info = JSON.parse(stdout);
        return { config: info.Docker.config as ContainerConfig, author: info.Docker.author as string | undefined };
      } catch (err) {
        return { error: (err as Error & { stderr?: string }).stderr ?? (err as Error).message };
      }
    });
    if (built.every((b) => 'error' in b)) {
      t.skip(`buildah cannot build here: ${(built[0] as { error: string }).error.split('\n')[0]}`);
      return;
    }
    for (const [i, dc] of cases.entries()) {
      await t.test(dc.name, () => {
        const b = built[i]!;
        if ('error' in b) assert.fail(`buildah failed: ${b.error}`);
        const theirs = normalize(b.config, b.author);
        const ours = kilnConfig(dc);
        for (const acc of dc.accepted ?? []) {
          assert.deepEqual(ours[acc.field], acc.kiln, `kiln's side of the accepted difference in ${acc.field}`);
          assert.deepEqual(theirs[acc.field], acc.buildah, `buildah's side of the accepted difference in ${acc.field} (${acc.reason})`);
          delete ours[acc.field];
          delete theirs[acc.field];
        }
        assert.deepEqual(ours, theirs);
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
