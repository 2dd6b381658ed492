import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lintDockerfile, mergeConfig, type PartialConfig } from '../../src/lint/index.js';

// Rule behaviours where kiln lint used to disagree with hadolint's own rule specs (measured by
// scripts/hadolint-agreement.ts against a hadolint checkout), each in a Dockerfile of our own. As in
// rules.test.ts, only the code under test is looked at.

async function lines(text: string, code: string, config: PartialConfig = {}): Promise<number[]> {
  const findings = await lintDockerfile(text, { file: 'Dockerfile', config: mergeConfig(config) });
  return findings.filter((f) => f.code === code).map((f) => f.line);
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

const F = 'FROM fedora:40\n';
const D = 'FROM debian:12\n';
const cases: Case[] = [
  // DL3009
  { code: 'DL3009', behaviour: 'apt and aptitude update leave lists too', bad: D + 'RUN apt update && apt install -y jq\nRUN aptitude update', at: [2, 3], good: D + 'RUN aptitude update && rm -rf /var/lib/apt/lists/*' },
  { code: 'DL3009', behaviour: 'a cache mount of /var/cache/apt alone does not hold the lists; one of /var/lib/apt does', bad: D + 'RUN --mount=type=cache,target=/var/cache/apt apt-get update', good: D + 'RUN --mount=type=cache,target=/var/lib/apt --mount=type=cache,target=/var/cache/apt apt-get update\nRUN --mount=type=tmpfs,target=/var/lib/apt/lists apt-get update' },
  { code: 'DL3009', behaviour: 'an ONBUILD RUN leaves its lists in the image built on this one, even from a stage nothing uses', bad: 'FROM debian:12 AS tools\nONBUILD RUN apt-get update\nFROM scratch\nCOPY x /x', at: [2], good: 'FROM debian:12 AS tools\nRUN apt-get update\nFROM scratch\nCOPY x /x' },
  { code: 'DL3009', behaviour: 'a stage a later FROM builds on ships its lists', bad: 'FROM debian:12 AS base\nRUN apt-get update\nFROM base\nRUN true', at: [2], good: 'FROM debian:12 AS base\nRUN apt-get update\nFROM debian:12\nCOPY --from=base /etc/os-release /x' },
  // DL3002
  { code: 'DL3002', behaviour: 'root is inherited through FROM <stage> when the image stage sets no USER', bad: 'FROM debian:12 AS base\nUSER root\nFROM base\nRUN id', at: [2], good: 'FROM debian:12 AS base\nUSER root\nFROM base\nUSER 1000' },
  { code: 'DL3002', behaviour: 'a build stage the image is not built on may stay root (a deliberate difference from hadolint)', bad: D + 'USER 0:0', good: 'FROM debian:12 AS build\nUSER root\nFROM debian:12\nUSER 1000' },
  // DL3063, DL3064, DL3065, DL3066, DL3067
  { code: 'DL3063', behaviour: 'stages named scratch or context are reported', bad: 'FROM alpine:3.20 AS context', good: 'FROM alpine:3.20 AS contexts' },
  { code: 'DL3064', behaviour: 'ARG and ENV named like credentials are reported, before FROM too', bad: 'ARG REGISTRY_PASSWORD\nFROM alpine:3.20\nENV DEPLOY_TOKEN=abc', at: [1, 3], good: 'ARG VERSION=1\nFROM alpine:3.20\nENV PUBLIC_URL=https://example.invalid' },
  { code: 'DL3065', behaviour: 'FROM --platform=$TARGETPLATFORM is redundant', bad: 'FROM --platform=${TARGETPLATFORM} alpine:3.20', good: 'FROM --platform=$BUILDPLATFORM alpine:3.20' },
  { code: 'DL3066', behaviour: 'USER by name is reported; a number or an ARG is not', bad: 'FROM alpine:3.20\nUSER app:app', good: 'FROM alpine:3.20\nARG UID=1000\nUSER 1000:1000\nUSER ${UID}' },
  { code: 'DL3067', behaviour: 'COPY --from of / to / is reported, quoted too', bad: 'FROM alpine:3.20 AS b\nFROM scratch\nCOPY --from=b "/" /', good: 'FROM alpine:3.20 AS b\nFROM scratch\nCOPY --from=b / /rootfs/\nCOPY / /' },
  // DL4006
  { code: 'DL4006', behaviour: 'SHELL with sh -o pipefail does not count (dash has no such option); bash, ash and zsh do', bad: 'FROM alpine:3.20\nSHELL ["/bin/sh", "-o", "pipefail", "-c"]\nRUN a | b', good: 'FROM alpine:3.20\nSHELL ["/bin/ash", "-eo", "pipefail", "-c"]\nRUN a | b' },
  // DL4000, DL3061, DL3049 in files that do not start with FROM (see also lenient.test.ts)
  { code: 'DL4000', behaviour: 'MAINTAINER before any FROM is still reported', bad: 'MAINTAINER ops\nFROM alpine:3.20', at: [1], good: 'LABEL maintainer=ops' },
  { code: 'DL3061', behaviour: 'each instruction before the first FROM but ARG is reported', bad: 'ARG A=1\nENV B=2\nRUN true\nFROM alpine:3.20', at: [2, 3], good: 'ARG A=1\n# comment\nFROM alpine:3.20\nENV B=2' },
  { code: 'DL3049', behaviour: 'a missing schema label in a fragment is reported at its first instruction', bad: 'COPY a /a\nCOPY b /b', at: [1], good: 'COPY a /a\nLABEL team=web', config: { labelSchema: { team: 'text' } } },
  // package managers
  { code: 'DL3040', behaviour: 'dnf upgrade and aliases need a clean after them, by the same program', bad: F + 'RUN dnf clean all && dnf -y up\nRUN dnf in -y x-1 && microdnf clean all', at: [2, 3], good: F + 'RUN dnf -y upgrade-minimal && dnf clean all\nRUN microdnf rei -y x-1 && rm -rf /var/cache/libdnf5\nRUN --mount=type=cache,target=/var/cache/libdnf5 dnf install -y x-1' },
  { code: 'DL3041', behaviour: 'dnf module install needs a stream; a package named by an undeclared variable is unpinned', bad: F + 'RUN dnf module install -y nodejs && dnf clean all\nRUN dnf install -y git-${GITV} && dnf clean all', at: [2, 3], good: F + 'ARG GITV=2.45.0\nRUN dnf module install -y nodejs:20 && dnf clean all\nRUN dnf install -y git-${GITV} && dnf clean all' },
  { code: 'DL3033', behaviour: 'an ARG of another stage does not reach this one (BuildKit scopes ARG to its stage)', bad: 'FROM fedora:40 AS a\nARG V=1.2\nFROM fedora:40\nRUN yum install -y tool-${V} && yum clean all', good: 'FROM fedora:40\nARG V=1.2\nRUN yum install -y tool-${V} && yum clean all' },
  { code: 'DL3032', behaviour: 'yum clean before the install cleans nothing', bad: F + 'RUN yum clean all && yum install -y x-1', good: F + 'RUN yum install -y x-1 && yum clean all' },
  { code: 'DL3036', behaviour: 'zypper clean before the install cleans nothing', bad: 'FROM opensuse/leap:15\nRUN zypper clean && zypper -n install x=1', good: 'FROM opensuse/leap:15\nRUN zypper -n install x=1 && zypper clean' },
  { code: 'DL3060', behaviour: 'a yarn cache left in a stage only copied from does not ship', bad: 'FROM node:20 AS deps\nRUN yarn install\nFROM node:20\nRUN yarn install', at: [4], good: 'FROM node:20 AS deps\nRUN yarn install\nFROM node:20-slim\nCOPY --from=deps /app /app' },
  { code: 'DL3013', behaviour: 'a VCS URL is pinned only by @ref; constraints files and requirements pin; pipx counts', bad: D + 'RUN pip install --no-cache-dir git+https://example.invalid/lib.git\nRUN pipx install ruff', at: [2, 3], good: D + 'RUN pip install --no-cache-dir git+https://example.invalid/lib.git@v1.0 && pip install --no-cache-dir -c constraints.txt flask' },
  { code: 'DL3016', behaviour: 'a git URL is pinned by #ref only, whatever @ it holds', bad: 'FROM node:20\nRUN npm install git+ssh://git@example.invalid:org/lib.git', good: 'FROM node:20\nRUN npm install git+ssh://git@example.invalid:org/lib.git#v1.2.0' },
  { code: 'DL3028', behaviour: 'gem words after -- are build options; an option takes its value', bad: 'FROM ruby:3\nRUN gem install rake -- --with-x', good: 'FROM ruby:3\nRUN gem install nokogiri:1.16 -- --use-system-libraries\nRUN gem install rails:7.1 --install-dir /gems' },
  { code: 'DL3042', behaviour: 'PIP_NO_CACHE_DIR counts when true, set in ENV or in the RUN itself', bad: D + 'ENV PIP_NO_CACHE_DIR=off\nRUN pip install x==1', good: D + 'RUN PIP_NO_CACHE_DIR=1 pip install x==1 && export PIP_NO_CACHE_DIR=true && pip install y==2' },
  { code: 'DL3062', behaviour: 'go get and go run fetch too; @latest pins nothing', bad: 'FROM golang:1.22\nRUN go install example.invalid/a@latest\nRUN go run example.invalid/b -v\nRUN go get -tool example.invalid/c', at: [2, 3, 4], good: 'FROM golang:1.22\nRUN go run example.invalid/b@v1.0.0 ./x && go get example.invalid/c@v0.3.1 && go run .' },
  // instructions
  { code: 'DL3026', behaviour: 'images pulled by COPY --from and RUN --mount=from must come from a trusted registry', bad: 'FROM registry.example.com/base:1 AS b\nCOPY --from=quay.io/org/tool:1 /t /t\nRUN --mount=type=bind,from=ghcr.io/org/x:1,target=/x true', at: [2, 3], good: 'FROM registry.example.com/base:1 AS b\nCOPY --from=b /t /t\nRUN --mount=type=bind,from=registry.example.com/x:1,target=/x true', config: { trustedRegistries: ['registry.example.com'] } },
  { code: 'DL3022', behaviour: 'stage numbers count FROMs, not the instructions before the first one', bad: 'LABEL a=b\nFROM alpine:3.20\nCOPY --from=0 /x /x', good: 'LABEL a=b\nFROM alpine:3.20\nFROM alpine:3.20\nCOPY --from=0 /x /x' },
  { code: 'DL3020', behaviour: 'a quoted archive or URL is still one ADD is for', bad: D + 'ADD "app.py" /app/', good: D + 'ADD "rootfs.tar.gz" /\nADD "https://example.invalid/x" /x' },
  { code: 'DL3021', behaviour: 'a quoted destination ending in / is a directory', bad: D + 'COPY a b "dest"', good: D + 'COPY a b "dest/"' },
  { code: 'DL3010', behaviour: 'an archive copied under another name is found by that name', bad: D + 'COPY dist/app-1.2.tar.gz /tmp/app.tgz\nRUN tar -xzf /tmp/app.tgz -C /opt', at: [2], good: D + 'COPY dist/app-1.2.tar.gz /tmp/app.tgz\nRUN tar -tzf /tmp/other.tgz' },
  { code: 'DL3025', behaviour: 'HEALTHCHECK CMD in shell form is reported', bad: D + 'HEALTHCHECK CMD curl -f http://localhost/', good: D + 'HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]' },
  { code: 'DL3048', behaviour: 'a label key must start with a letter', bad: D + 'LABEL 2fa.enabled=yes', good: D + 'LABEL com.example.build_id=7' },
  { code: 'DL3059', behaviour: 'a RUN that already chains commands is not asked to merge; sudo X is one command', bad: D + 'RUN sudo ldconfig\nRUN update-ca-certificates', good: D + 'RUN make && make install\nRUN ldconfig' },
  { code: 'DL1001', behaviour: 'inline ignore pragmas are reported when the rule is turned on', bad: D + '# hadolint ignore=DL3008\nRUN true', at: [2], good: D + '# hadolint global ignore=DL3008\nRUN true', config: { override: { info: ['DL1001'] } } },
];

for (const c of cases) {
  test(`${c.code}: ${c.behaviour}`, async () => {
    const badLines = await lines(c.bad, c.code, c.config);
    const expected = c.at ?? [c.bad.split('\n').length];
    assert.deepEqual(badLines, expected, `${c.code} on ${JSON.stringify(c.bad)}`);
    assert.deepEqual(await lines(c.good, c.code, c.config), [], `${c.code} must not fire on ${JSON.stringify(c.good)}`);
  });
}

test('a stage ignore pragma covers the stage whose FROM follows it, and only that stage', async () => {
  const text = 'FROM alpine:3.20\nEXPOSE 70000\n# hadolint stage ignore=DL3011\nFROM alpine:3.20\nEXPOSE 70001\nFROM alpine:3.20\nEXPOSE 70002\n';
  assert.deepEqual(await lines(text, 'DL3011'), [2, 7]);
});

test('a pragma may end in a comment; one naming something that is not a rule code is no pragma', async () => {
  assert.deepEqual(await lines('FROM alpine:3.20\n# hadolint ignore=DL3002 # the entrypoint drops root\nUSER root\n', 'DL3002'), []);
  assert.deepEqual(await lines('FROM alpine:3.20\n# hadolint ignore=DL3002,later\nUSER root\n', 'DL3002'), [3]);
  assert.deepEqual(await lines('FROM alpine:3.20\n# kiln global ignore=DL3011 # ports are checked elsewhere\nEXPOSE 70000\n', 'DL3011'), []);
});

test('DL1001 is not reported with the default configuration', async () => {
  assert.deepEqual(await lines('FROM debian:12\n# hadolint ignore=DL3008\nRUN true\n', 'DL1001'), []);
});
