// BuildKit's frontend/dockerfile/dockerfile_check_test.go: the build checks a build reports (rule,
// line, detail), `# check=` directives (file-wide and before one instruction), and error=true. kiln
// prints each as `WARNING: Rule: detail (line N)` after the build, BuildKit's LintFormatShort; a
// failing build reports its error. Each test names the BuildKit test function it mirrors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('check');
});
after(() => b.close());

type Expected = [rule: string, line: number, detail?: string];
interface Case {
  dockerfile: string;
  ignore?: string;
  args?: string[];
  warnings?: Expected[];
  error?: RegExp;
}

/** Builds each case; a successful build must print exactly the expected warnings. */
async function check(cases: Case[]): Promise<void> {
  for (const c of cases) {
    const files: Record<string, string> = { Dockerfile: c.dockerfile };
    if (c.ignore !== undefined) files['.dockerignore'] = c.ignore;
    const r = await b.build(await b.context(files), c.args ?? []);
    if (c.error) {
      assert.notEqual(r.code, 0, c.dockerfile);
      assert.match(r.stderr, c.error, c.dockerfile);
      continue;
    }
    assert.equal(r.code, 0, `${c.dockerfile}\n${r.stderr}`);
    const got = [...r.stderr.matchAll(/^WARNING: (\w+): (.*?) \(line (\d+)\)/gm)].map((m) => ({ rule: m[1]!, detail: m[2]!, line: Number(m[3]) }));
    const want = c.warnings ?? [];
    assert.deepEqual(got.map((g) => `${g.rule}:${g.line}`).sort(), want.map(([r, l]) => `${r}:${l}`).sort(), `${c.dockerfile}\n${r.stderr}`);
    for (const [rule, line, detail] of want) if (detail) assert.ok(got.some((g) => g.rule === rule && g.line === line && g.detail === detail), `${rule} line ${line}: ${detail}\n${r.stderr}`);
  }
}

test('testCopyIgnoredFiles: COPY of a file .dockerignore excludes fails; a skip directive or a path not excluded build quietly', async () => {
  await check([
    { dockerfile: '\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n', ignore: '\nDockerfile\n', error: /Dockerfile:3: .*"\/?Dockerfile":? not found/ },
    { dockerfile: '# check=skip=CopyIgnoredFile\nFROM scratch\nCOPY Dockerfile .\n', ignore: 'Dockerfile\n', error: /Dockerfile:3: / },
    { dockerfile: '\nFROM scratch AS base\nCOPY Dockerfile /foobar\nADD Dockerfile /windy\nFROM base\nCOPY --from=base /foobar /Dockerfile\n', ignore: '\nfoobar\n' },
    { dockerfile: '\nFROM scratch\nCOPY ./Dockerfile .\n', ignore: '\n**\n!Dockerfile\n' },
  ]);
});

test('testCopyIgnoredFileContextRoot: COPY . . of a context .dockerignore partly excludes is no warning', async () => {
  await check([{ dockerfile: '\nFROM scratch\nCOPY . .\n', ignore: '\n.*\n' }]);
});

test('testSecretsUsedInArgOrEnv: ARG and ENV names that look like secrets warn, allowed words and a skip before the instruction do not', async () => {
  const dockerfile = [
    'FROM scratch',
    'ARG SECRET_PASSPHRASE',
    'ENV SUPER_Secret=foo',
    'ENV password=bar secret=baz',
    'ARG super_duper_secret_token=foo auth=bar',
    'ENV apikey=bar sunflower=foo',
    'ENV git_key=',
    'ENV PUBLIC_KEY=',
    'ARG public_token',
    'ARG SECRET_PASSPHRASE_FILE',
    'ENV password_file=bar secret_File=baz',
    'ARG AUTH_MODULE_VERSION',
    '# check=skip=SecretsUsedInArgOrEnv // allowed here',
    'ENV password=bar',
    '# check=skip=all // only this instruction',
    'ARG alternate_password',
    '',
  ].join('\n');
  await check([
    {
      dockerfile,
      warnings: [
        ['SecretsUsedInArgOrEnv', 2, 'Do not use ARG or ENV instructions for sensitive data (ARG "SECRET_PASSPHRASE")'],
        ['SecretsUsedInArgOrEnv', 3, 'Do not use ARG or ENV instructions for sensitive data (ENV "SUPER_Secret")'],
        ['SecretsUsedInArgOrEnv', 4, 'Do not use ARG or ENV instructions for sensitive data (ENV "password")'],
        ['SecretsUsedInArgOrEnv', 4, 'Do not use ARG or ENV instructions for sensitive data (ENV "secret")'],
        ['SecretsUsedInArgOrEnv', 5, 'Do not use ARG or ENV instructions for sensitive data (ARG "super_duper_secret_token")'],
        ['SecretsUsedInArgOrEnv', 5, 'Do not use ARG or ENV instructions for sensitive data (ARG "auth")'],
        ['SecretsUsedInArgOrEnv', 6, 'Do not use ARG or ENV instructions for sensitive data (ENV "apikey")'],
        ['SecretsUsedInArgOrEnv', 7, 'Do not use ARG or ENV instructions for sensitive data (ENV "git_key")'],
      ],
    },
  ]);
});

test('testAllTargetUnmarshal: undefined variables of every stage are reported, not only the target\'s', async () => {
  await check([{ dockerfile: '\nFROM scratch AS first\nCOPY $foo .\nFROM scratch AS second\nCOPY $bar .\n', warnings: [['UndefinedVar', 3, "Usage of undefined variable '$foo'"], ['UndefinedVar', 5, "Usage of undefined variable '$bar'"]] }]);
});

test('testRuleCheckOption: # check=skip and error=true: skipped rules neither warn nor fail; the rest fail the build naming the rule', async () => {
  const body = 'FROM scratch as base\ncopy Dockerfile .\n';
  await check([
    { dockerfile: `#check=skip=all\n${body}` },
    { dockerfile: `#check=skip=all;error=true\n${body}` },
    { dockerfile: `#check=skip=ConsistentInstructionCasing,FromAsCasing\n${body}` },
    { dockerfile: `#check=skip=ConsistentInstructionCasing,FromAsCasing;error=true\n${body}` },
    { dockerfile: `#check=skip=ConsistentInstructionCasing\n${body}`, warnings: [['FromAsCasing', 2, "'as' and 'FROM' keywords' casing do not match"]] },
    { dockerfile: `#check=skip=ConsistentInstructionCasing;error=true\n${body}`, error: /lint violation found for rules: FromAsCasing/ },
    // The BUILDKIT_DOCKERFILE_CHECK build arg replaces the directive (dockerfile_check_test.go:480-512;
    // dockerui/config.go:308-313, convert.go:191-201).
    { dockerfile: `#check=skip=all\n${body}`, args: ['--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=ConsistentInstructionCasing;error=true'], error: /Dockerfile.*lint violation found for rules: FromAsCasing/ },
    { dockerfile: `#check=error=true\n${body}`, args: ['--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=all'] },
    { dockerfile: body, args: ['--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=ConsistentInstructionCasing'], warnings: [['FromAsCasing', 1, "'as' and 'FROM' keywords' casing do not match"]] },
    { dockerfile: body, args: ['--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=all;bogus=1'], error: /failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK/ },
  ]);
});

test('testDefinitionDescription: with experimental=InvalidDefinitionDescription, a comment right above a named FROM or an ARG must start with its name (skip=all does not turn it off)', async () => {
  const detail = (instr: string, name: string) => `Comment for ${instr} should follow the format: \`# ${name} <description>\``;
  await check([
    // dockerfile_check_test.go:58-76: every description names its definition; an empty `#` and a comment above COPY are no descriptions.
    {
      dockerfile:
        '# check=skip=all;experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n# base this is the base image\nFROM scratch AS base\n# version this is the version number\nARG version=latest\n# baz this is the baz\nARG foo=baz bar=qux baz=quux\n#\nARG bit=bat\n# comment for something other than ARG or FROM\nCOPY Dockerfile .\n',
    },
    // :78-124
    {
      dockerfile:
        '# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n# definitely a bad comment\nARG version=latest\n# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n',
      warnings: [
        ['InvalidDefinitionDescription', 3, detail('ARG', 'foo')],
        ['InvalidDefinitionDescription', 5, detail('FROM', 'base')],
        ['InvalidDefinitionDescription', 7, detail('ARG', 'version')],
        ['InvalidDefinitionDescription', 9, detail('ARG', '<arg_key>')],
      ],
    },
    // Not asked for: an experimental rule stays quiet.
    { dockerfile: '# bar this is the bar\nARG foo=bar\nFROM scratch\n' },
  ]);
});

test('testStageName: stage names should be lowercase, AS should match the case of FROM', async () => {
  await check([
    {
      dockerfile: '\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n# warning: as should match FROM\n#\nFROM scratch as base2\nFROM scratch AS base3\n',
      warnings: [['StageNameCasing', 4, "Stage name 'BadStageName' should be lowercase"], ['FromAsCasing', 7, "'as' and 'FROM' keywords' casing do not match"]],
    },
    { dockerfile: '\nfrom scratch AS base\nfrom scratch as base2\n', warnings: [['FromAsCasing', 2, "'AS' and 'from' keywords' casing do not match"]] },
  ]);
});

test('testNoEmptyContinuation: an empty line inside a continued instruction warns, at the line the instruction ends', async () => {
  await check([{ dockerfile: '\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n', warnings: [['NoEmptyContinuation', 6, 'Empty continuation line']] }]);
});

test('testConsistentInstructionCasing: instructions should share the case of the majority', async () => {
  await check([
    { dockerfile: '\nFrom scratch as base\nFROM scratch AS base2\n', warnings: [['ConsistentInstructionCasing', 2, "Command 'From' should match the case of the command majority (uppercase)"]] },
    { dockerfile: '\nFROM scratch\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n', warnings: [['ConsistentInstructionCasing', 3, "Command 'copy' should match the case of the command majority (uppercase)"]] },
    { dockerfile: '\nfrOM scratch as base\nfrom scratch as base2\n', warnings: [['ConsistentInstructionCasing', 2, "Command 'frOM' should match the case of the command majority (lowercase)"]] },
    { dockerfile: '\nfrom scratch\nCOPY Dockerfile /foo\ncopy Dockerfile /bar\n', warnings: [['ConsistentInstructionCasing', 3, "Command 'COPY' should match the case of the command majority (lowercase)"]] },
    { dockerfile: '\nfrom scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\nCOPY Dockerfile /baz\n', warnings: [['ConsistentInstructionCasing', 2, "Command 'from' should match the case of the command majority (uppercase)"]] },
    { dockerfile: '\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n' },
    { dockerfile: "\nFROM busybox\nRUN <<'EOT'\nenv\nEOT\n" },
  ]);
});

test('testDuplicateStageName and testReservedStageName: a stage name used twice, or named scratch or context, warns', async () => {
  await check([
    { dockerfile: '\nFROM scratch AS b\nFROM scratch AS b\n', warnings: [['DuplicateStageName', 3, 'Duplicate stage name "b", stage names should be unique']] },
    { dockerfile: '\nFROM scratch AS b1\nFROM scratch AS b2\n' },
    {
      dockerfile: '\nFROM scratch AS scratch\nFROM scratch AS context\n',
      warnings: [['ReservedStageName', 2, 'Stage name should not use the same name as reserved stage "scratch"'], ['ReservedStageName', 3, 'Stage name should not use the same name as reserved stage "context"']],
    },
  ]);
});

test('testJSONArgsRecommended and testMaintainerDeprecated: shell-form CMD/ENTRYPOINT warn unless a SHELL is set (also in a parent stage); MAINTAINER warns; a skip comment silences one instruction', async () => {
  await check([
    { dockerfile: '\nFROM scratch\nCMD mycommand\n', warnings: [['JSONArgsRecommended', 3, 'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals']] },
    { dockerfile: '\nFROM scratch\nENTRYPOINT mycommand\n', warnings: [['JSONArgsRecommended', 3, 'JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals']] },
    { dockerfile: '\nFROM scratch\nSHELL ["/usr/bin/customshell"]\nCMD mycommand\n' },
    { dockerfile: '\nFROM scratch AS base\nSHELL ["/usr/bin/customshell"]\nFROM base\nENTRYPOINT mycommand\n' },
    { dockerfile: '\nFROM scratch\n# check=skip=JSONArgsRecommended\nCMD mycommand\n' },
    { dockerfile: '\nFROM scratch\nMAINTAINER me@example.org\n', warnings: [['MaintainerDeprecated', 3, 'Maintainer instruction is deprecated in favor of using label']] },
    { dockerfile: '\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n' },
  ]);
});

test('testWarningsBeforeError: a parse error after instructions that warn still fails at its line', async () => {
  await check([{ dockerfile: '\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n', error: /Dockerfile:4: unknown instruction: BADCMD/ }]);
});

test('testUndeclaredArg: FROM arguments must be declared; predefined platform args need not be', async () => {
  await check([
    { dockerfile: '\nARG base=scratch\nFROM $base\nCOPY Dockerfile .\n' },
    { dockerfile: '\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n' },
    { dockerfile: '\nARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n' },
    { dockerfile: '\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n', error: /Dockerfile:2: empty platform value from expression \$BULIDPLATFORM \(did you mean BUILDPLATFORM\?\)/ },
    { dockerfile: '\nARG tag=latest\nFROM busybox:${tag}${version} AS b\nCOPY Dockerfile .\n', warnings: [['UndefinedArgInFrom', 3, "FROM argument 'version' is not declared"]] },
  ]);
});

test('testWorkdirRelativePath: a relative WORKDIR before any absolute one warns', async () => {
  await check([
    { dockerfile: '\nFROM scratch\nWORKDIR app/\n', warnings: [['WorkdirRelativePath', 3, 'Relative workdir "app/" can have unexpected results if the base image changes']] },
    { dockerfile: '\nFROM scratch AS a\nWORKDIR /app\nFROM a AS b\nWORKDIR subdir/\n' },
    { dockerfile: '\nFROM scratch\n# check=skip=WorkdirRelativePath\nWORKDIR app/\n' },
  ]);
});

test('testUnmatchedVars: undefined variables warn, with a suggestion; declared ones, inherited ARGs and the image\'s PATH do not', async () => {
  await check([
    { dockerfile: '\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n' },
    { dockerfile: '\nFROM busybox AS base\nARG foo=Dockerfile\nFROM base\nCOPY $foo .\n' },
    { dockerfile: '\nFROM busybox\nRUN echo $PATH\n' },
    { dockerfile: '\nFROM busybox\nCOPY Dockerfile$foo .\nARG foo=bar\nRUN echo $foo\n', warnings: [['UndefinedVar', 3, "Usage of undefined variable '$foo'"]] },
    { dockerfile: '\nFROM busybox\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nCOPY Dockerfile$DIR_ASSET .\n', warnings: [['UndefinedVar', 5, "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)"]] },
    { dockerfile: '\nFROM busybox\nENV PATH=$PAHT:/tmp/bin\n', warnings: [['UndefinedVar', 3, "Usage of undefined variable '$PAHT' (did you mean $PATH?)"]] },
  ]);
});

test('testMultipleInstructionsDisallowed: a second ENTRYPOINT, CMD or HEALTHCHECK in a stage warns at the first; in a child stage it does not', async () => {
  const w = (name: string, line: number): Expected => ['MultipleInstructionsDisallowed', line, `Multiple ${name} instructions should not be used in the same stage because only the last one will be used`];
  await check([
    { dockerfile: '\nFROM scratch\nENTRYPOINT ["/myapp"]\nENTRYPOINT ["/myotherapp"]\nCMD ["/myapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n', warnings: [w('ENTRYPOINT', 3), w('CMD', 5), w('HEALTHCHECK', 7)] },
    { dockerfile: '\nFROM scratch AS a\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\nFROM a AS b\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n' },
  ]);
});

test('testLegacyKeyValueFormat: ENV and LABEL "key value" warn, also in a stage built from another; a skip comment silences one', async () => {
  const env: Expected = ['LegacyKeyValueFormat', 3, '"ENV key=value" should be used instead of legacy "ENV key value" format'];
  const label: Expected = ['LegacyKeyValueFormat', 4, '"LABEL key=value" should be used instead of legacy "LABEL key value" format'];
  await check([
    { dockerfile: '\nFROM scratch\nENV testkey value\nLABEL key value\n', warnings: [env, label] },
    { dockerfile: '\nFROM scratch\nENV testkey=value\nLABEL key=value\n' },
    { dockerfile: '\nFROM scratch AS a\nFROM a AS b\nENV testkey value\nLABEL key value\nFROM a AS c\n', warnings: [['LegacyKeyValueFormat', 4, env[2]], ['LegacyKeyValueFormat', 5, label[2]]] },
    { dockerfile: '\nFROM scratch\n# check=skip=LegacyKeyValueFormat\nENV testkey value\n# check=skip=LegacyKeyValueFormat\nLABEL key value\n' },
  ]);
});

test('testRedundantTargetPlatform and testFromPlatformFlagConstDisallowed: FROM --platform=$TARGETPLATFORM is redundant; a constant platform warns unless the stage is named for it', async () => {
  await check([
    { dockerfile: '\nFROM --platform=$TARGETPLATFORM scratch\n', warnings: [['RedundantTargetPlatform', 2, 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior']] },
    { dockerfile: '\nFROM --platform=${TARGETPLATFORM} scratch\n', warnings: [['RedundantTargetPlatform', 2, 'Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior']] },
    { dockerfile: '\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n' },
    { dockerfile: '\nFROM --platform=linux/amd64 scratch\n', warnings: [['FromPlatformFlagConstDisallowed', 2, 'FROM --platform flag should not use constant value "linux/amd64"']] },
    { dockerfile: '\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n' },
    { dockerfile: '\nFROM --platform=linux/amd64 scratch AS linux\n' },
  ]);
});

test('testInvalidDefaultArgInFrom: an ARG default that leaves FROM empty or invalid warns, even when a build arg fills it', async () => {
  await check([
    { dockerfile: '\nARG VERSION\nFROM busybox:$VERSION\n', args: ['--build-arg', 'VERSION=latest'], warnings: [['InvalidDefaultArgInFrom', 3, 'Default value for ARG busybox:$VERSION results in empty or invalid base image name']] },
    { dockerfile: '\nARG IMAGE\nFROM $IMAGE\n', args: ['--build-arg', 'IMAGE=busybox:latest'], warnings: [['InvalidDefaultArgInFrom', 3, 'Default value for ARG $IMAGE results in empty or invalid base image name']] },
    { dockerfile: '\nARG SFX="box:"\nFROM busy${SFX}\n', args: ['--build-arg', 'SFX=box:latest'], warnings: [['InvalidDefaultArgInFrom', 3, 'Default value for ARG busy${SFX} results in empty or invalid base image name']] },
    { dockerfile: '\nARG VERSION="latest"\nFROM busybox:${VERSION}\n', args: ['--build-arg', 'VERSION=latest'] },
  ]);
});

test('testExposeProtoCasing and testExposeInvalidFormat: EXPOSE protocols should be lowercase; an address or host port warns', async () => {
  await check([
    { dockerfile: '\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n', warnings: [['ExposeProtoCasing', 3, "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase"], ['ExposeProtoCasing', 3, "Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase"]] },
    {
      dockerfile: '\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n',
      warnings: [
        ['ExposeInvalidFormat', 3, "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'"],
        ['ExposeInvalidFormat', 3, "EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'"],
        ['ExposeInvalidFormat', 3, "EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'"],
      ],
    },
  ]);
});
