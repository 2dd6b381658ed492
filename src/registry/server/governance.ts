import picomatch from 'picomatch';
import { UsageError } from '../../errors.js';
import type { ImmutableRule } from './metadata/metadata.js';

// The matching half of a namespace's rules (the service enforces them): tag immutability
// patterns, doublestar globs as Harbor's (`**` any repository path, `v*` tags, {a,b} and [..]
// classes), and how a quota and a usage read in a message.

const globOptions = { dot: true, strictBrackets: true } as const;

/** A pattern a rule may hold; throws naming the field when it is empty, too long or unbalanced. */
export function checkPattern(pattern: string, field: string): string {
  if (pattern === '') throw new UsageError(`${field}: an empty pattern matches nothing; use ** for every repository or * for every tag`);
  if (pattern.length > 256 || /[\0\n]/.test(pattern)) throw new UsageError(`${field}: at most 256 characters on one line`);
  try {
    picomatch.makeRe(pattern, globOptions);
  } catch (e) {
    throw new UsageError(`${field}: "${pattern}" is not a valid pattern: ${(e as Error).message}`);
  }
  return pattern;
}

/** Whether a rule's pattern matches a tag or a repository path. */
export function globMatches(value: string, pattern: string): boolean {
  return picomatch.isMatch(value, pattern, globOptions);
}

/** The repository path a rule's repository pattern is matched against: Harbor's, below the project ("**" is every repository of it). */
export function pathInNamespace(namespace: string, repository: string): string {
  return repository.startsWith(namespace + '/') ? repository.slice(namespace.length + 1) : repository;
}

/** Whether the rule protects `tag` of `repository` (a repository of the rule's namespace). */
export function ruleProtects(rule: ImmutableRule, repository: string, tag: string): boolean {
  const repoHit = globMatches(pathInNamespace(rule.namespace, repository), rule.repos);
  return repoHit !== rule.excludeRepos && globMatches(tag, rule.tags) !== rule.excludeTags;
}

export function describeRule(rule: ImmutableRule): string {
  return `rule ${rule.id}: repositories ${rule.excludeRepos ? 'not ' : ''}matching "${rule.repos}", tags ${rule.excludeTags ? 'not ' : ''}matching "${rule.tags}"`;
}
