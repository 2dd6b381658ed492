// BuildKit's frontend/dockerfile/errors_test.go (testErrorsSourceMap): an error names the Dockerfile
// and the line of the instruction at fault. BuildKit attaches a source map (file, range, the text);
// kiln's errors carry `Dockerfile:LINE:` in front of the message, the first line of an instruction
// that spans several.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openBuilder, type Builder } from './builder.js';

let b: Builder;
before(async () => {
  b = await openBuilder('errors');
});
after(() => b.close());

const cases: { name: string; dockerfile: string; line: number }[] = [
  { name: 'invalidenv', dockerfile: 'from busybox\nenv', line: 2 },
  { name: 'invalidrun', dockerfile: 'from scratch\nenv foo=bar\nrun what', line: 3 },
  { name: 'invalidcopy', dockerfile: 'from scratch\nenv foo=bar\ncopy foo bar\nenv bar=baz', line: 3 },
  { name: 'invalidflag', dockerfile: 'from scratch\nenv foo=bar\ncopy --foo=bar / /\nenv bar=baz', line: 3 },
  { name: 'invalidcopyfrom', dockerfile: 'from scratch\nenv foo=bar\ncopy --from=invalid foo bar\nenv bar=baz', line: 3 },
  { name: 'invalidmultiline', dockerfile: 'from scratch\nrun wh\\\nat\nenv bar=baz', line: 2 },
];

for (const c of cases) {
  test(`testErrorsSourceMap (${c.name}): the error names Dockerfile line ${c.line}`, async () => {
    // --pull never: the image "invalid" is looked up in the store only, without a network
    const r = await b.build(await b.context({ Dockerfile: c.dockerfile }), ['--pull', 'never']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`(^|\\s)Dockerfile:${c.line}: `, 'm'), r.stderr);
  });
}
