// Every rule kiln lint knows, hadolint's (DL…) and kiln's own (KL…).

import type { Rule } from '../rule.js';
import { commandRules } from './commands.js';
import { instructionRules } from './instructions.js';
import { kilnRules } from './kiln.js';
import { labelRules } from './labels.js';
import { packageRules } from './packages.js';
import { byCodeUnits } from '../../order.js';

export const rules: Rule[] = [...instructionRules, ...commandRules, ...packageRules, ...labelRules, ...kilnRules].sort((a, b) => byCodeUnits(a.code, b.code));

/** Findings raised by the engine itself rather than by a rule over a parsed file. */
export const parseRules = {
  DL1000: { severity: 'error', message: 'Dockerfile parse error' },
  DL1001: { severity: 'ignore', message: 'Please refrain from using inline ignore pragmas `# hadolint ignore=DLxxxx`.' },
  DL3043: { severity: 'error', message: '`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.' },
  DL3061: { severity: 'error', message: 'Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.' },
} as const;
