import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyChmod, InvalidChmod, parseChmod } from '../../src/dockerfile/chmod.js';

// COPY/ADD --chmod values as BuildKit reads them: frontend/dockerfile/dockerfile2llb/convert_copy.go
// (dispatchCopy: strconv.ParseUint(chmod, 8, 32), at most 07777, else a symbolic mode) and the mode
// package fsutil applies it with (ParseWithUmask(s, 0), Set.Apply: BSD setmode(3)).

const file = (s: string, mode: number) => applyChmod(parseChmod(s), mode, false).toString(8);
const dir = (s: string, mode: number) => applyChmod(parseChmod(s), mode, true).toString(8);

describe('--chmod values', () => {
  test('any octal number up to 07777 is the exact mode, whatever the source mode (0, 000, 0755, 4755, 00644)', () => {
    for (const [s, mode] of [['0', 0], ['000', 0], ['0755', 0o755], ['755', 0o755], ['4755', 0o4755], ['7777', 0o7777], ['00644', 0o644]] as const) {
      assert.deepEqual(parseChmod(s), { kind: 'octal', mode }, s);
      assert.equal(applyChmod(parseChmod(s), 0o600, false), mode, s);
      assert.equal(applyChmod(parseChmod(s), 0o700, true), mode, s);
    }
  });

  test('numbers that are not octal or above 07777 get BuildKit\'s octal message (testCopyInvalidChmod)', () => {
    for (const s of ['64a', '10000', '8', '0x755', '99999999999', '1e3']) {
      assert.throws(() => parseChmod(s), { name: 'InvalidChmod', message: `invalid chmod parameter: '${s}'. it should be octal string and between 0 and 07777` }, s);
    }
  });

  test('symbolic modes that chmod(1) would refuse are errors', () => {
    for (const s of ['u', 'a,', 'u+x,', ',u+x', 'q', 'u+q', '+755', '=644', 'u+x,,g+x', 'rwx']) assert.throws(() => parseChmod(s), InvalidChmod, s);
  });

  test('symbolic modes change the source mode: the cases of testChmodNonOctal', () => {
    assert.equal(file('go-w', 0o666), '644');
    assert.equal(file('u=rw,g=r,o=r', 0o666), '644');
    assert.equal(file('a+X', 0o666), '666');
    assert.equal(dir('go-w', 0o124), '104');
    assert.equal(dir('u+rw,g+r,o-x,o+w', 0o124), '766');
    assert.equal(dir('a+X', 0o124), '135');
  });

  test('X adds execute only to directories and to entries that had an execute bit (u=rwX,go=rX of the reference)', () => {
    assert.equal(file('u=rwX,go=rX', 0o600), '644');
    assert.equal(file('u=rwX,go=rX', 0o700), '755');
    assert.equal(dir('u=rwX,go=rX', 0o700), '755');
    // X is judged on the mode before the change, not after an x of the same mode.
    assert.equal(file('u+x,g+X', 0o600), '700');
    // "-X" removes execute like "-x" (the Go port of setmode, unlike BSD's C).
    assert.equal(file('-X', 0o755), '644');
  });

  test('without u, g, o or a every class changes, with a umask of 0', () => {
    assert.equal(file('+x', 0o644), '755');
    assert.equal(file('=rw', 0o755), '666');
    assert.equal(file('-w', 0o666), '444');
    // "=" without a class clears all but the sticky bit.
    assert.equal(dir('=', 0o1777), '1000');
    assert.equal(dir('=rwx', 0o3700), '1777');
  });

  test('setuid, setgid and sticky: s for u or g (ignored for o alone), t for any class but o alone', () => {
    assert.equal(file('u+s', 0o755), '4755');
    assert.equal(file('g+s', 0o755), '2755');
    assert.equal(file('+s', 0o755), '6755');
    assert.equal(file('o+s', 0o755), '755');
    assert.equal(dir('+t', 0o777), '1777');
    assert.equal(dir('u+t', 0o777), '1777');
    assert.equal(dir('o+t', 0o777), '777');
    assert.equal(file('u=rwx', 0o4644), '744');
    assert.equal(dir('a-st', 0o7777), '777');
    assert.equal(dir('a-s', 0o7777), '1777');
  });

  test('copying one class to others: g=u, go=u-w, and an = after a copy that clears it again', () => {
    assert.equal(file('g=u', 0o640), '660');
    assert.equal(file('go=u-w', 0o700), '755');
    assert.equal(file('o+g', 0o750), '755');
    assert.equal(file('u-o', 0o777), '77');
    assert.equal(file('u=gr', 0o755), '455');
    // An X before a copy in an "=" is applied before the copy (the Go port's order).
    assert.equal(dir('u=Xo', 0o644), '444');
  });

  test('clauses apply left to right, and several actions may follow one class', () => {
    assert.equal(file('a=,u+rw', 0o777), '600');
    assert.equal(file('u+r-w=x', 0o644), '144');
    assert.equal(file('u+x,u-x', 0o600), '600');
  });
});
