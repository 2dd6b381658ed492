// hadolint's label rules: valid keys always; with a `label-schema`, required labels and their value
// formats (text, url, semver, hash, rfc3339, spdx, email); with `strict-labels`, nothing else.

import type { LabelInstruction } from '../../dockerfile/index.js';
import type { LabelType } from '../config.js';
import { stageChain, stageLine, type LintContext, type Report, type Rule } from '../rule.js';

function labels(ctx: LintContext): LabelInstruction[] {
  return ctx.dockerfile.instructions.filter((i): i is LabelInstruction => i.kind === 'label');
}

/** Label rule for one value type: each schema label of that type whose value does not fit. */
function formatRule(code: string, type: LabelType, what: string, valid: (v: string) => boolean): Rule {
  return {
    code,
    severity: 'warning',
    message: `Label is not a valid ${what}.`,
    check(ctx, report) {
      for (const i of labels(ctx)) {
        for (const kv of i.pairs) {
          if (ctx.config.labelSchema[kv.key] !== type || kv.value === '' || kv.value.includes('$')) continue;
          if (!valid(unquote(kv.value))) report(i.line, `Label \`${kv.key}\` is not a valid ${what}.`);
        }
      }
    },
  };
}

const unquote = (v: string) => v.replace(/^"(.*)"$/s, '$1').replace(/^'(.*)'$/s, '$1');

export const labelRules: Rule[] = [
  {
    code: 'DL3048',
    severity: 'style',
    message: 'Invalid Label Key',
    check(ctx, report) {
      for (const i of labels(ctx)) if (i.pairs.some((kv) => !validLabelKey(unquote(kv.key)))) report(i.line);
    },
  },
  {
    code: 'DL3049',
    severity: 'info',
    message: 'Label is missing.',
    check(ctx, report) {
      const required = Object.keys(ctx.config.labelSchema);
      const last = ctx.stages[ctx.stages.length - 1];
      if (!required.length || !last) return;
      const present = new Set(stageChain(ctx, last.index).flatMap((s) => s.instructions.flatMap((i) => (i.kind === 'label' ? i.pairs.map((kv) => unquote(kv.key)) : []))));
      for (const name of required) if (!present.has(name)) report(stageLine(last), `Label \`${name}\` is missing.`);
    },
  },
  {
    code: 'DL3050',
    severity: 'info',
    message: 'Superfluous label(s) present.',
    check(ctx, report) {
      if (!ctx.config.strictLabels) return;
      for (const i of labels(ctx)) if (i.pairs.some((kv) => !(unquote(kv.key) in ctx.config.labelSchema))) report(i.line);
    },
  },
  {
    code: 'DL3051',
    severity: 'warning',
    message: 'Label is empty.',
    check(ctx, report: Report) {
      for (const i of labels(ctx)) {
        for (const kv of i.pairs) if (kv.key in ctx.config.labelSchema && unquote(kv.value) === '') report(i.line, `Label \`${kv.key}\` is empty.`);
      }
    },
  },
  formatRule('DL3052', 'url', 'URL', validUrl),
  formatRule('DL3053', 'rfc3339', 'time format - must conform to RFC3339', validRfc3339),
  formatRule('DL3054', 'spdx', 'SPDX identifier', validSpdx),
  formatRule('DL3055', 'hash', 'git hash', (v) => /^[0-9a-f]{7,40}$/.test(v)),
  formatRule('DL3056', 'semver', 'semantic version', (v) => semverRe.test(v)),
  formatRule('DL3058', 'email', 'email format - must conform to RFC5322', (v) => /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/.test(v)),
];

/** Docker's label key recommendations: lower-case alphanumerics, dots and dashes; no reserved namespace. */
export function validLabelKey(key: string): boolean {
  // Docker's key format: starts with a lower-case letter, ends with one or a digit, no doubled separators.
  if (/^(com\.docker\.|io\.docker\.|org\.dockerproject\.)/.test(key)) return false;
  return /^[a-z]([a-z0-9._/-]*[a-z0-9])?$/.test(key) && !/\.\.|--/.test(key);
}

// semver.org's recommended regular expression.
const semverRe =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

function validUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return u.protocol.length > 1 && (u.host !== '' || u.protocol === 'mailto:' || u.protocol === 'urn:');
  } catch {
    return false;
  }
}

export function validRfc3339(v: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(v);
  if (!m) return false;
  return !Number.isNaN(Date.parse(v.replace(' ', 'T'))) && Number(m[2]) <= 12 && Number(m[3]) <= 31 && Number(m[4]) <= 23 && Number(m[5]) <= 59 && Number(m[6]) <= 60;
}

// The SPDX identifiers found in practice; LicenseRef-* and expressions (AND, OR, WITH, parentheses) are read too.
const spdxIds = new Set(
  (
    '0BSD AFL-3.0 AGPL-1.0 AGPL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.0 Apache-1.1 Apache-2.0 APSL-2.0 Artistic-1.0 Artistic-2.0 ' +
    'BSD-1-Clause BSD-2-Clause BSD-2-Clause-Patent BSD-3-Clause BSD-3-Clause-Clear BSD-4-Clause BSL-1.0 BUSL-1.1 CC-BY-3.0 CC-BY-4.0 ' +
    'CC-BY-SA-3.0 CC-BY-SA-4.0 CC-BY-NC-4.0 CC0-1.0 CDDL-1.0 CDDL-1.1 CPL-1.0 ECL-2.0 EFL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 ' +
    'GFDL-1.3 GFDL-1.3-only GFDL-1.3-or-later GPL-1.0 GPL-2.0 GPL-2.0-only GPL-2.0-or-later GPL-3.0 GPL-3.0-only GPL-3.0-or-later ' +
    'ISC LGPL-2.0 LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1 LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0 LGPL-3.0-only LGPL-3.0-or-later ' +
    'LPPL-1.3c MIT MIT-0 MPL-1.1 MPL-2.0 MPL-2.0-no-copyleft-exception MS-PL MS-RL NCSA OFL-1.1 OpenSSL OSL-3.0 PHP-3.01 PostgreSQL ' +
    'Python-2.0 PSF-2.0 Ruby Unlicense UPL-1.0 Vim W3C WTFPL X11 Zlib ZPL-2.1 curl blessing Classpath-exception-2.0 ' +
    'LLVM-exception GCC-exception-3.1 Autoconf-exception-3.0 Bison-exception-2.2'
  )
    .split(' ')
    .map((s) => s.toLowerCase()),
);

export function validSpdx(v: string): boolean {
  const tokens = v.replace(/[()]/g, ' ').split(/\s+/).filter(Boolean);
  if (tokens.length === 0) return false;
  let expectId = true;
  for (const t of tokens) {
    if (expectId) {
      const id = t.replace(/\+$/, '').toLowerCase();
      if (!spdxIds.has(id) && !/^(licenseref|documentref)-[a-z0-9.-]+/i.test(t)) return false;
      expectId = false;
    } else {
      if (!/^(AND|OR|WITH)$/.test(t)) return false;
      expectId = true;
    }
  }
  return !expectId;
}
