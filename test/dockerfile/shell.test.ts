import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvList, ShellLex, expandWord, expandWords } from '../../src/dockerfile/index.js';

const env = { HOME: '/root', EMPTY: '', NAME: 'world', FILE: 'archive.tar.gz', PATH_LIKE: '/a/b/c', SPACED: 'x  y' };

const words: [input: string, expected: string | Error][] = [
  ['plain', 'plain'],
  ['$HOME/bin', '/root/bin'],
  ['${HOME}bin', '/rootbin'],
  ['$UNSET', ''],
  ['${UNSET:-fallback}', 'fallback'],
  ['${EMPTY:-fallback}', 'fallback'],
  ['${EMPTY-fallback}', ''],
  ['${NAME:+set}', 'set'],
  ['${EMPTY:+set}', ''],
  ['${EMPTY+set}', 'set'],
  ['${FILE#*.}', 'tar.gz'],
  ['${FILE##*.}', 'gz'],
  ['${FILE%.*}', 'archive.tar'],
  ['${FILE%%.*}', 'archive'],
  ['${PATH_LIKE/\\//:}', ':a/b/c'],
  ['${PATH_LIKE//\\//:}', ':a:b:c'],
  ['${NAME/o/0}', 'w0rld'],
  ["'$NAME'", '$NAME'],
  ['"$NAME"', 'world'],
  ['\\$NAME', '$NAME'],
  ['"a\\"b"', 'a"b'],
  ['"a\\b"', 'a\\b'],
  ['a\\ b', 'a b'],
  ['$', '$'],
  ['${NAME:?}', 'world'],
  ['${UNSET:?need it}', new Error('UNSET: need it')],
  ['${UNSET?}', new Error('UNSET: is not allowed to be unset')],
  ['${EMPTY:?}', new Error('EMPTY: is not allowed to be empty')],
  ['${', new Error("syntax error: missing '}'")],
  ['${:x}', new Error('syntax error: bad substitution')],
  ['${NAME:%x}', new Error('unsupported modifier (:%) in substitution')],
  ["'open", new Error('unexpected end of statement while looking for matching single-quote')],
];

for (const [input, expected] of words) {
  test(`expands ${input}`, () => {
    if (expected instanceof Error) {
      assert.throws(() => expandWord(input, env), (err: Error) => err.message.endsWith(expected.message));
    } else {
      assert.equal(expandWord(input, env), expected);
    }
  });
}

test('the backtick escape token escapes instead of the backslash', () => {
  assert.equal(expandWord('C:\\dir`$NAME', env, '`'), 'C:\\dir$NAME');
  assert.equal(expandWord('"`"q"', env, '`'), '"q');
});

test('words are split after expansion on unquoted blanks', () => {
  assert.deepEqual(expandWords('a $SPACED "$SPACED" b', env), ['a', 'x', 'y', 'x  y', 'b']);
  assert.deepEqual(expandWords("'a b' c", env), ['a b', 'c']);
});

test('matched and unmatched variables are reported', () => {
  const r = new ShellLex().processWord('$NAME ${UNSET:-x} $OTHER', EnvList.fromRecord(env));
  assert.deepEqual([...r.matched], ['NAME']);
  assert.deepEqual([...r.unmatched].sort(), ['OTHER', 'UNSET']);
});

test('with skipUnsetEnv, unset references are kept as written', () => {
  const lex = new ShellLex({ skipUnsetEnv: true });
  assert.equal(lex.processWord('$NAME $UNSET ${UNSET:-x}', EnvList.fromRecord(env)).result, 'world $UNSET ${UNSET:-x}');
});

test('an environment keeps the order of last assignment', () => {
  const e = EnvList.fromStrings(['A=1', 'B=2']);
  e.set('A', '3');
  assert.deepEqual(e.toStrings(), ['B=2', 'A=3']);
});
