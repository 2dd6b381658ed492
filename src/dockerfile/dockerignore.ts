// .dockerignore: reading the file (moby/patternmatcher/ignorefile) and matching context paths against
// its patterns (moby/patternmatcher, the matcher BuildKit's context transfer uses): Go filepath.Match
// syntax with `**`, `!` exceptions, the last matching pattern wins, and a pattern that matches a
// parent directory matches everything below it.

import { readFile } from 'node:fs/promises';
import { posix, join } from 'node:path';

/** Go's filepath.Clean on slash paths. */
function goClean(p: string): string {
  if (p === '') return '.';
  let r = posix.normalize(p);
  if (r.length > 1 && r.endsWith('/')) r = r.slice(0, -1);
  return r;
}

/** Patterns of an ignore file, as ignorefile.ReadAll returns them. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  let lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines = lines.slice(0, -1);
  lines.forEach((raw, i) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith('\ufeff')) line = line.slice(1);
    if (line.startsWith('#')) return;
    let pattern = line.trim();
    if (pattern === '') return;
    const invert = pattern[0] === '!';
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = goClean(pattern);
      if (pattern.length > 1 && pattern[0] === '/') pattern = pattern.slice(1);
    }
    out.push(invert ? '!' + pattern : pattern);
  });
  return out;
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The ignore patterns for a build: `<Dockerfile>.dockerignore` beside the Dockerfile when it exists
 * (BuildKit's per-Dockerfile ignore file), otherwise `.dockerignore` at the context root, otherwise none.
 */
export async function loadDockerignore(contextDir: string, dockerfilePath: string): Promise<string[]> {
  const beside = await readIfExists(dockerfilePath + '.dockerignore');
  if (beside !== undefined) return parseDockerignore(beside);
  const root = await readIfExists(join(contextDir, '.dockerignore'));
  return root === undefined ? [] : parseDockerignore(root);
}

export class DockerignorePatternError extends Error {}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

interface Pattern {
  text: string;
  exclusion: boolean;
  dirs: string[];
  type: MatchType;
  regexp?: RegExp;
}

const regexSyntax = /[\\^$.*+?()[\]{}|/-]/;

/** Go's filepath.Match pattern check (ErrBadPattern): escapes and character classes must be complete. */
function validateGlob(p: string): boolean {
  const c = [...p];
  for (let i = 0; i < c.length; i++) {
    if (c[i] === '\\') {
      if (i + 1 >= c.length) return false;
      i++;
    } else if (c[i] === '[') {
      i++;
      if (c[i] === '^') i++;
      let nrange = 0;
      for (;;) {
        if (i < c.length && c[i] === ']' && nrange > 0) break;
        const esc = (): boolean => {
          if (i >= c.length || c[i] === '-' || c[i] === ']') return false;
          if (c[i] === '\\') {
            i++;
            if (i >= c.length) return false;
          }
          i++;
          return true;
        };
        if (!esc()) return false;
        if (c[i] === '-') {
          i++;
          if (!esc()) return false;
        }
        nrange++;
      }
    }
  }
  return true;
}

function escapeLiteral(ch: string): string {
  return regexSyntax.test(ch) ? '\\' + ch : ch;
}

function compile(pattern: string): { type: MatchType; regexp?: RegExp } {
  const chars = [...pattern];
  let re = '^';
  let type: MatchType = 'exact';
  let inClass = false;
  for (let i = 0, n = 0; i < chars.length; i++, n++) {
    const ch = chars[i]!;
    if (inClass) {
      if (ch === ']') {
        inClass = false;
        re += ']';
      } else if (ch === '\\' && i + 1 < chars.length) {
        re += escapeLiteral(chars[++i]!);
      } else if (ch === '-' || ch === '^') {
        re += ch;
      } else {
        re += escapeLiteral(ch);
      }
      continue;
    }
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++;
        if (i + 1 >= chars.length) {
          // a trailing ** matches everything, as in .gitignore
          if (type === 'exact') type = 'prefix';
          else {
            re += '.*';
            type = 'regexp';
          }
        } else {
          re += '(.*/)?';
          type = 'regexp';
        }
        if (n === 0) type = 'suffix';
      } else {
        re += '[^/]*';
        type = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      type = 'regexp';
    } else if ('.+()|{}$'.includes(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      if (i + 1 < chars.length) {
        const next = chars[++i]!;
        re += /[dDsSwW]/.test(next) ? '\\' + next : escapeLiteral(next);
        type = 'regexp';
      } else {
        re += '\\\\';
      }
    } else if (ch === '[') {
      inClass = true;
      re += '[';
      if (chars[i + 1] === '^') {
        re += '^';
        i++;
      }
      type = 'regexp';
    } else if (ch === ']') {
      re += '\\]';
      type = 'regexp';
    } else {
      re += escapeLiteral(ch);
    }
  }
  if (type === 'regexp') return { type, regexp: new RegExp(re + '$', 'u') };
  return { type };
}

function matchPattern(p: Pattern, file: string): boolean {
  switch (p.type) {
    case 'exact':
      return file === p.text;
    case 'prefix':
      return file.startsWith(p.text.slice(0, -2));
    case 'suffix': {
      const suffix = p.text.slice(2);
      if (file.endsWith(suffix)) return true;
      return suffix[0] === '/' && file === suffix.slice(1);
    }
    case 'regexp':
      return p.regexp!.test(file);
  }
}

/** Go's path.Match of one path component against one pattern component (used to prune directories). */
function componentMayMatch(patternPart: string, name: string): boolean {
  if (patternPart.includes('**')) return true;
  try {
    const c = compile(patternPart);
    return c.type === 'exact' ? patternPart === name : c.type === 'regexp' ? c.regexp!.test(name) : true;
  } catch {
    return true;
  }
}

export interface IgnoreMatcher {
  /** The path (relative to the context, slash-separated) is excluded from the context. */
  ignores(relPath: string): boolean;
  /**
   * The directory is excluded and no `!` exception could bring back anything below it, so a context
   * walker can skip it without reading it.
   */
  canSkipDir(relDir: string): boolean;
  /** Some pattern is an exception (`!…`). */
  readonly hasExceptions: boolean;
  readonly patterns: readonly string[];
}

function cleanRel(p: string): string {
  let c = goClean(p);
  while (c.startsWith('/')) c = c.slice(1);
  return c === '' ? '.' : c;
}

/** A matcher for .dockerignore patterns. Throws DockerignorePatternError for malformed patterns. */
export function createIgnoreMatcher(patterns: readonly string[]): IgnoreMatcher {
  const compiled: Pattern[] = [];
  for (let raw of patterns) {
    raw = raw.trim();
    if (raw === '') continue;
    let p = goClean(raw);
    let exclusion = false;
    if (p[0] === '!') {
      if (p.length === 1) throw new DockerignorePatternError('illegal exclusion pattern: "!"');
      exclusion = true;
      p = p.slice(1);
    }
    if (!validateGlob(p)) throw new DockerignorePatternError(`syntax error in pattern: ${raw}`);
    let c;
    try {
      c = compile(p);
    } catch {
      throw new DockerignorePatternError(`syntax error in pattern: ${raw}`);
    }
    compiled.push({ text: p, exclusion, dirs: p.split('/'), ...c });
  }
  const hasExceptions = compiled.some((p) => p.exclusion);

  const ignores = (relPath: string): boolean => {
    // Most contexts have no .dockerignore: their 20,000 files need no path cleaning either.
    if (compiled.length === 0) return false;
    const file = cleanRel(relPath);
    if (file === '.') return false;
    const parent = posix.dirname(file);
    const parentDirs = parent.split('/');
    let matched = false;
    for (const p of compiled) {
      // an inclusion cannot change an already-matched path, nor an exception an unmatched one
      if (p.exclusion !== matched) continue;
      let match = matchPattern(p, file);
      if (!match && parent !== '.') {
        for (let i = 0; i < parentDirs.length && !match; i++) match = matchPattern(p, parentDirs.slice(0, i + 1).join('/'));
      }
      if (match) matched = !p.exclusion;
    }
    return matched;
  };

  const couldMatchBelow = (p: Pattern, dirParts: string[]): boolean => {
    if (p.dirs.length <= dirParts.length && !p.text.includes('**')) return false;
    for (let i = 0; i < dirParts.length; i++) {
      const part = p.dirs[i];
      if (part === undefined) return false;
      if (part.includes('**')) return true;
      if (!componentMayMatch(part, dirParts[i]!)) return false;
    }
    return true;
  };

  return {
    ignores,
    canSkipDir(relDir: string): boolean {
      const dir = cleanRel(relDir);
      if (dir === '.' || !ignores(dir)) return false;
      const parts = dir.split('/');
      return !compiled.some((p) => p.exclusion && couldMatchBelow(p, parts));
    },
    hasExceptions,
    patterns: compiled.map((p) => (p.exclusion ? '!' : '') + p.text),
  };
}
