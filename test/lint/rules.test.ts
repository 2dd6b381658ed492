import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig, lintDockerfile, mergeConfig, type PartialConfig } from '../../src/lint/index.js';

// Each rule against a Dockerfile that breaks it and one that does not, through the library (no
// process per case). Only the code under test is looked at, so other findings do not matter.

async function codes(text: string, config: PartialConfig = {}): Promise<{ code: string; line: number }[]> {
  const findings = await lintDockerfile(text, { file: 'Dockerfile', config: mergeConfig(config) });
  return findings.map((f) => ({ code: f.code, line: f.line }));
}

async function lines(text: string, code: string, config: PartialConfig = {}): Promise<number[]> {
  return (await codes(text, config)).filter((f) => f.code === code).map((f) => f.line);
}

interface Case {
  code: string;
  behaviour: string;
  bad: string;
  /** Lines the finding must be on (default: the last line of `bad`). */
  at?: number[];
  good: string;
  config?: PartialConfig;
}

const F = 'FROM debian:12\n';
const cases: Case[] = [
  { code: 'DL3000', behaviour: 'a relative WORKDIR is an error, an absolute or variable one is not', bad: F + 'WORKDIR app', good: F + 'WORKDIR /app\nWORKDIR $HOME' },
  { code: 'DL3001', behaviour: 'commands pointless in a container (ssh, vim, …) are reported', bad: F + 'RUN apt-get -y install --no-install-recommends x=1 && vim /etc/x', good: F + 'RUN echo vim' },
  { code: 'DL3002', behaviour: 'the last USER of the final stage being root is reported; an earlier stage may be root', bad: F + 'USER app\nUSER root', good: 'FROM debian:12 AS a\nUSER root\nFROM debian:12\nUSER 1000' },
  { code: 'DL3003', behaviour: 'cd anywhere in RUN, even in a subshell, asks for WORKDIR', bad: F + 'RUN true && (cd /tmp; ls)', good: F + 'WORKDIR /tmp\nRUN ls' },
  { code: 'DL3004', behaviour: 'sudo is an error', bad: F + 'RUN sudo ls', good: F + 'RUN gosu app ls' },
  { code: 'DL3006', behaviour: 'FROM without a tag is reported, stage names, scratch and tagged images are not', bad: 'FROM debian', good: 'FROM debian:12 AS base\nFROM base\nFROM scratch\nFROM busybox@sha256:' + 'a'.repeat(64) },
  { code: 'DL3006', behaviour: 'FROM with a global ARG is judged on the ARG default', bad: 'ARG BASE=debian\nFROM ${BASE}', at: [2], good: 'ARG BASE=debian:12\nFROM $BASE' },
  { code: 'DL3007', behaviour: 'FROM image:latest is reported', bad: 'FROM debian:latest', good: F },
  { code: 'DL3008', behaviour: 'apt-get install without versions is reported, pinned packages are not', bad: F + 'RUN apt-get install -y --no-install-recommends curl', good: F + 'RUN apt-get install -y --no-install-recommends curl=7.88.1-10 ./local.deb' },
  { code: 'DL3009', behaviour: 'apt lists left in the final stage are reported, not in a stage only copied from', bad: F + 'RUN apt-get update && apt-get install -y --no-install-recommends a=1', good: 'FROM debian:12 AS b\nRUN apt-get update\nFROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends a=1 && rm -rf /var/lib/apt/lists/*' },
  { code: 'DL3009', behaviour: 'apt lists on a cache mount do not need deleting', bad: F + 'RUN apt-get update', good: F + 'RUN --mount=type=cache,target=/var/lib/apt/lists apt-get update' },
  { code: 'DL3010', behaviour: 'COPY of an archive that RUN then unpacks suggests ADD', bad: F + 'COPY app.tar.gz /tmp/\nRUN tar -xzf /tmp/app.tar.gz -C /opt', at: [2], good: F + 'ADD app.tar.gz /opt/' },
  { code: 'DL3011', behaviour: 'ports above 65535 are errors, ranges and protocols are read', bad: F + 'EXPOSE 80 70000/tcp', good: F + 'EXPOSE 80/udp 8000-8010 $PORT' },
  { code: 'DL3012', behaviour: 'a second HEALTHCHECK in a stage is an error', bad: F + 'HEALTHCHECK CMD true\nHEALTHCHECK NONE', good: F + 'HEALTHCHECK CMD true' },
  { code: 'DL3013', behaviour: 'pip install without versions is reported (pip3 and python -m pip too); requirements, pins and paths are not', bad: F + 'RUN python3 -m pip install --no-cache-dir flask', good: F + 'RUN pip3 install --no-cache-dir flask==3.0 -r requirements.txt . git+https://x/y' },
  { code: 'DL3014', behaviour: 'apt-get install without -y is reported; -y inside combined flags and -qq count', bad: F + 'RUN apt-get install --no-install-recommends a=1', good: F + 'RUN apt-get -qy install --no-install-recommends a=1 && apt-get -qq install --no-install-recommends b=1' },
  { code: 'DL3015', behaviour: 'apt-get install without --no-install-recommends is reported', bad: F + 'RUN apt-get install -y a=1', good: F + 'RUN apt-get install -y -o APT::Install-Recommends=false a=1' },
  { code: 'DL3016', behaviour: 'npm install without versions is reported, scoped pins and npm ci are not', bad: F + 'RUN npm install -g @scope/tool', good: F + 'RUN npm ci && npm install && npm i -g @scope/tool@1.2.3 express@4' },
  { code: 'DL3018', behaviour: 'apk add without versions is reported; --virtual names are not packages', bad: F + 'RUN apk add --no-cache curl', good: F + 'RUN apk add --no-cache --virtual .deps curl=8.5.0-r0' },
  { code: 'DL3019', behaviour: 'apk add without --no-cache is reported', bad: F + 'RUN apk add curl=1', good: F + 'RUN apk add --no-cache curl=1' },
  { code: 'DL3020', behaviour: 'ADD of local files asks for COPY; URLs and archives are what ADD is for', bad: F + 'ADD app.py /app/', good: F + 'ADD https://example.invalid/x.tar.gz /opt/\nADD rootfs.tar.xz /' },
  { code: 'DL3021', behaviour: 'COPY of several sources needs a destination ending in /', bad: F + 'COPY a b /dest', good: F + 'COPY a b /dest/' },
  { code: 'DL3022', behaviour: 'COPY --from an unknown stage is reported; earlier stages, indexes and images are not', bad: F + 'COPY --from=builder /a /a', good: 'FROM debian:12 AS builder\nFROM debian:12\nCOPY --from=builder /a /a\nCOPY --from=0 /a /a\nCOPY --from=nginx:1 /a /a' },
  { code: 'DL3023', behaviour: 'COPY --from its own stage is an error', bad: 'FROM debian:12 AS app\nCOPY --from=app /a /b', good: 'FROM debian:12 AS app\nFROM debian:12\nCOPY --from=app /a /b' },
  { code: 'DL3024', behaviour: 'stage names must be unique', bad: 'FROM debian:12 AS a\nFROM debian:12 AS a', good: 'FROM debian:12 AS a\nFROM debian:12 AS b' },
  { code: 'DL3025', behaviour: 'CMD and ENTRYPOINT in shell form are reported', bad: F + 'ENTRYPOINT /app', good: F + 'ENTRYPOINT ["/app"]\nCMD ["--help"]' },
  { code: 'DL3026', behaviour: 'FROM a registry outside trustedRegistries is an error; globs match', bad: 'FROM quay.io/x/y:1', good: 'FROM registry.example.com/x:1\nFROM debian:12', config: { trustedRegistries: ['*.example.com', 'docker.io'] } },
  { code: 'DL3027', behaviour: 'apt (not apt-get) is reported', bad: F + 'RUN apt install -y x', good: F + 'RUN apt-cache policy x' },
  { code: 'DL3028', behaviour: 'gem install without versions is reported', bad: F + 'RUN gem install rake', good: F + 'RUN gem install rake:13.0 && gem install bundler -v 2.5' },
  { code: 'DL3029', behaviour: 'FROM --platform is reported unless it uses BUILDPLATFORM or TARGETPLATFORM', bad: 'FROM --platform=linux/amd64 debian:12', good: 'FROM --platform=$BUILDPLATFORM debian:12' },
  { code: 'DL3030', behaviour: 'yum install without -y is reported', bad: F + 'RUN yum install httpd-2.4 && yum clean all', good: F + 'RUN yum install -y httpd-2.4 && yum clean all' },
  { code: 'DL3032', behaviour: 'yum without yum clean all is reported', bad: F + 'RUN yum install -y httpd-2.4', good: F + 'RUN yum install -y httpd-2.4 && yum clean all' },
  { code: 'DL3033', behaviour: 'yum install without versions is reported', bad: F + 'RUN yum install -y httpd && yum clean all', good: F + 'RUN yum install -y httpd-2.4.57 && yum clean all' },
  { code: 'DL3034', behaviour: 'zypper without a non-interactive switch is reported', bad: F + 'RUN zypper install x=1 && zypper clean', good: F + 'RUN zypper -n install x=1 && zypper clean' },
  { code: 'DL3035', behaviour: 'zypper dist-upgrade is reported', bad: F + 'RUN zypper -n dist-upgrade', good: F + 'RUN zypper -n refresh' },
  { code: 'DL3036', behaviour: 'zypper install without zypper clean is reported', bad: F + 'RUN zypper -n install x=1', good: F + 'RUN zypper -n install x=1 && zypper clean -a' },
  { code: 'DL3037', behaviour: 'zypper install without versions is reported', bad: F + 'RUN zypper -n install x && zypper clean', good: F + 'RUN zypper -n install "x>=1.0" && zypper clean' },
  { code: 'DL3038', behaviour: 'dnf install without -y is reported (microdnf too)', bad: F + 'RUN microdnf install x-1 && microdnf clean all', good: F + 'RUN dnf install -y x-1 && dnf clean all' },
  { code: 'DL3040', behaviour: 'dnf without dnf clean all is reported', bad: F + 'RUN dnf install -y x-1', good: F + 'RUN dnf install -y x-1 && dnf clean all' },
  { code: 'DL3041', behaviour: 'dnf install without versions is reported', bad: F + 'RUN dnf install -y x && dnf clean all', good: F + 'RUN dnf install -y x-1.2 && dnf clean all' },
  { code: 'DL3042', behaviour: 'pip install without --no-cache-dir is reported unless PIP_NO_CACHE_DIR is set', bad: F + 'RUN pip install x==1', good: F + 'ENV PIP_NO_CACHE_DIR=1\nRUN pip install x==1' },
  { code: 'DL3044', behaviour: 'ENV referring to a variable set in the same ENV is an error', bad: F + 'ENV A=1 B=${A}/x', good: F + 'ENV A=1\nENV B=$A/x' },
  { code: 'DL3045', behaviour: 'COPY to a relative destination without WORKDIR is reported; a parent stage WORKDIR counts', bad: F + 'COPY a b', good: 'FROM debian:12 AS base\nWORKDIR /app\nFROM base\nCOPY a b' },
  { code: 'DL3046', behaviour: 'useradd with a high UID and no -l is reported', bad: F + 'RUN useradd -u 123456 app', good: F + 'RUN useradd -l -u 123456 app && useradd -u 1000 b' },
  { code: 'DL3047', behaviour: 'wget without --progress or quiet flags is reported', bad: F + 'RUN wget https://x/y', good: F + 'RUN wget -q https://x/y && wget -nv https://x/z && wget --progress=dot:giga https://x/w' },
  { code: 'DL3048', behaviour: 'label keys that are not lower-case reverse-DNS are reported', bad: F + 'LABEL Maintainer=x', good: F + 'LABEL org.opencontainers.image.title=x' },
  { code: 'DL3049', behaviour: 'a label the schema requires is reported missing at the final FROM', bad: 'FROM debian:12', at: [1], good: F + 'LABEL maintainer=x', config: { labelSchema: { maintainer: 'text' } } },
  { code: 'DL3050', behaviour: 'with strict-labels, labels outside the schema are reported', bad: F + 'LABEL maintainer=x other=y', good: F + 'LABEL maintainer=x', config: { labelSchema: { maintainer: 'text' }, strictLabels: true } },
  { code: 'DL3051', behaviour: 'an empty schema label is reported', bad: F + 'LABEL maintainer=""', good: F + 'LABEL maintainer=x', config: { labelSchema: { maintainer: 'text' } } },
  { code: 'DL3052', behaviour: 'a url label must be a URL', bad: F + 'LABEL docs=nope', good: F + 'LABEL docs=https://example.invalid/docs', config: { labelSchema: { docs: 'url' } } },
  { code: 'DL3053', behaviour: 'an rfc3339 label must be an RFC 3339 time', bad: F + 'LABEL created=yesterday', good: F + 'LABEL created=2024-01-02T03:04:05Z', config: { labelSchema: { created: 'rfc3339' } } },
  { code: 'DL3054', behaviour: 'an spdx label must be an SPDX expression', bad: F + 'LABEL license=Whatever', good: F + 'LABEL license="MIT OR Apache-2.0"', config: { labelSchema: { license: 'spdx' } } },
  { code: 'DL3055', behaviour: 'a hash label must be a git hash', bad: F + 'LABEL rev=xyz', good: F + 'LABEL rev=0123456789abcdef0123456789abcdef01234567', config: { labelSchema: { rev: 'hash' } } },
  { code: 'DL3056', behaviour: 'a semver label must be a semantic version', bad: F + 'LABEL version=1.2', good: F + 'LABEL version=1.2.3-rc.1', config: { labelSchema: { version: 'semver' } } },
  { code: 'DL3057', behaviour: 'a missing HEALTHCHECK is off by default and reported when turned on', bad: 'FROM debian:12', at: [1], good: F + 'HEALTHCHECK CMD true', config: { override: { info: ['DL3057'] } } },
  { code: 'DL3058', behaviour: 'an email label must be an address', bad: F + 'LABEL contact=bob', good: F + 'LABEL contact=bob@example.org', config: { labelSchema: { contact: 'email' } } },
  { code: 'DL3059', behaviour: 'consecutive RUNs are reported at the second; different mounts are not', bad: F + 'RUN a\nRUN b', good: F + 'RUN a\nRUN --mount=type=cache,target=/c b' },
  { code: 'DL3060', behaviour: 'yarn install without yarn cache clean is reported', bad: F + 'RUN yarn install', good: F + 'RUN yarn install && yarn cache clean' },
  { code: 'DL3062', behaviour: 'go install without @version is reported', bad: F + 'RUN go install example.org/tool', good: F + 'RUN go install example.org/tool@v1.2.3 && go install ./...' },
  { code: 'DL4000', behaviour: 'MAINTAINER is deprecated', bad: F + 'MAINTAINER me', good: F + 'LABEL maintainer=me' },
  { code: 'DL4001', behaviour: 'wget and curl in one stage are reported where the second one is used', bad: F + 'RUN wget -q a\nRUN curl -o b c', good: F + 'RUN curl -o a b\nFROM debian:12\nRUN wget -q c' },
  { code: 'DL4003', behaviour: 'a second CMD in a stage is reported', bad: F + 'CMD ["a"]\nCMD ["b"]', good: F + 'CMD ["a"]\nFROM debian:12\nCMD ["b"]' },
  { code: 'DL4004', behaviour: 'a second ENTRYPOINT in a stage is an error', bad: F + 'ENTRYPOINT ["a"]\nENTRYPOINT ["b"]', good: F + 'ENTRYPOINT ["a"]' },
  { code: 'DL4005', behaviour: 'linking over /bin/sh asks for SHELL', bad: F + 'RUN ln -sf /bin/bash /bin/sh', good: F + 'SHELL ["/bin/bash", "-c"]' },
  { code: 'DL4006', behaviour: 'a pipe without pipefail is reported; SHELL -o pipefail or set -o pipefail avoid it', bad: F + 'RUN curl -s x | sh', good: F + 'RUN set -o pipefail && curl -s x | sh\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN a | b' },
  { code: 'KL1001', behaviour: 'ARG and ENV named like secrets, or holding a credential, are reported', bad: F + 'ARG GITHUB_TOKEN\nENV CONFIG=AKIAABCDEFGHIJKLMNOP', at: [2, 3], good: F + 'ARG VERSION=1\nENV PUBLIC_KEY_FILE=/k' },
  { code: 'KL1002', behaviour: 'ADD of a URL without --checksum is reported', bad: F + 'ADD https://example.invalid/a.tar.gz /a/', good: F + 'ADD --checksum=sha256:' + 'a'.repeat(64) + ' https://example.invalid/a.tar.gz /a/' },
  { code: 'KL1003', behaviour: 'COPY of the whole context before installing dependencies is reported at the COPY', bad: F + 'WORKDIR /app\nCOPY . .\nRUN npm ci', at: [3], good: F + 'WORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .' },
  { code: 'KL1004', behaviour: 'a production Dockerfile must pin FROM by digest', bad: '# kiln production\nFROM debian:12', at: [2], good: '# kiln production\nFROM debian:12@sha256:' + 'b'.repeat(64) },
  { code: 'KL1005', behaviour: 'cache-mount candidates are off by default and reported when turned on', bad: F + 'RUN pip install --no-cache-dir x==1', good: F + 'RUN --mount=type=cache,target=/root/.cache/pip pip install x==1', config: { override: { info: ['KL1005'] } } },
];

for (const c of cases) {
  test(`${c.code}: ${c.behaviour}`, async () => {
    const badLines = await lines(c.bad, c.code, c.config);
    const expected = c.at ?? [c.bad.split('\n').length];
    assert.deepEqual(badLines, expected, `${c.code} on ${JSON.stringify(c.bad)}`);
    assert.deepEqual(await lines(c.good, c.code, c.config), [], `${c.code} must not fire on ${JSON.stringify(c.good)}`);
  });
}

test('package rules follow &&, ;, ||, pipes, subshells, braces, sh -c, sudo and env', async () => {
  const wrapped = [
    'RUN true && apt-get install -y --no-install-recommends curl',
    'RUN true; apt-get install -y --no-install-recommends curl',
    'RUN false || apt-get install -y --no-install-recommends curl',
    'RUN echo | apt-get install -y --no-install-recommends curl',
    'RUN (apt-get install -y --no-install-recommends curl)',
    'RUN { apt-get install -y --no-install-recommends curl; }',
    'RUN sh -c "apt-get install -y --no-install-recommends curl"',
    'RUN bash -ec \'true && apt-get install -y --no-install-recommends curl\'',
    'RUN env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl',
    'RUN if true; then apt-get install -y --no-install-recommends curl; fi',
    'RUN ["sh", "-c", "apt-get install -y --no-install-recommends curl"]',
    'RUN true \\\n && apt-get install -y \\\n   --no-install-recommends curl',
    'RUN <<EOF\nset -e\napt-get install -y --no-install-recommends curl\nEOF',
  ];
  for (const run of wrapped) assert.deepEqual(await lines(F + run, 'DL3008'), [2], run);
  // Quoted text and comments are not commands.
  assert.deepEqual(await lines(F + 'RUN echo "apt-get install curl" # apt-get install curl', 'DL3008'), []);
});

test('a non-POSIX SHELL turns the shell rules off for the RUNs after it', async () => {
  const text = 'FROM mcr.microsoft.com/windows/servercore:ltsc2022\nSHELL ["powershell", "-Command"]\nRUN cd C:\\; apt-get install curl | x';
  const found = (await codes(text)).map((f) => f.code);
  assert.ok(!found.includes('DL3003') && !found.includes('DL3008') && !found.includes('DL4006'), found.join(' '));
});

test('rules apply to ONBUILD RUN triggers too', async () => {
  assert.deepEqual(await lines(F + 'ONBUILD RUN sudo make install', 'DL3004'), [2]);
});

test('DL1000 reports an instruction that does not parse at its line, and the rest is still linted', async () => {
  const found = await lintDockerfile(F + 'RUN true\nCOPY --chmode=644 a /a\nRUN sudo make\n', { file: 'Dockerfile', config: defaultConfig() });
  assert.deepEqual(found.filter((f) => f.code !== 'DL3059').map((f) => [f.code, f.line, f.level]), [['DL1000', 3, 'error'], ['DL3004', 4, 'error']]);
  assert.match(found[0]!.message, /unknown flag --chmode/);
});

test('DL1000 for text that cannot be split into instructions (an unterminated heredoc) stops the lint', async () => {
  const found = await lintDockerfile(F + 'RUN sudo x\nRUN <<EOF\necho\n', { file: 'Dockerfile', config: defaultConfig() });
  assert.deepEqual(found.map((f) => [f.code, f.line]), [['DL1000', 3]]);
});

test('DL3043 and DL3061 are reported as rules and the rest of the file is still linted', async () => {
  const found = await codes('RUN echo before\nFROM debian\nONBUILD FROM debian:12\nMAINTAINER x\n');
  assert.deepEqual(
    found.filter((f) => ['DL3061', 'DL3043', 'DL3006', 'DL4000'].includes(f.code)),
    [{ code: 'DL3061', line: 1 }, { code: 'DL3006', line: 2 }, { code: 'DL3043', line: 3 }, { code: 'DL4000', line: 4 }],
  );
});

test('ignored and override change what is reported and at which level', async () => {
  const text = 'FROM debian\nMAINTAINER me\n';
  const config = mergeConfig({ ignored: ['DL4000'], override: { error: ['DL3006'] } });
  const found = await lintDockerfile(text, { file: 'Dockerfile', config });
  assert.deepEqual(found.map((f) => [f.code, f.level]), [['DL3006', 'error']]);
});

test('pragmas: ignore= applies to the next instruction, global ignore= to the file, kiln ignore= is the same', async () => {
  const text = [
    '# hadolint global ignore=DL3059',
    'FROM debian',
    '# hadolint ignore=DL3003,DL4006',
    'RUN cd /x && a | b',
    'RUN cd /y',
    '# kiln ignore=DL3004',
    '# another comment',
    'RUN sudo z',
  ].join('\n');
  const found = await codes(text);
  assert.deepEqual(found.filter((f) => ['DL3003', 'DL4006', 'DL3059', 'DL3004', 'DL3006'].includes(f.code)), [{ code: 'DL3006', line: 2 }, { code: 'DL3003', line: 5 }]);
  const noPragmas = await codes(text, { disableIgnorePragma: true });
  // Line 8 only: line 5 follows a RUN that already chains commands, which DL3059 leaves alone.
  assert.deepEqual(noPragmas.filter((f) => f.code === 'DL3059').map((f) => f.line), [8]);
  assert.equal(noPragmas.filter((f) => f.code === 'DL3003').length, 2);
});
