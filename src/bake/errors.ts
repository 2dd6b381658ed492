import { KilnError, UsageError } from '../errors.js';

// Errors of kiln bake. Each names the bake file and, where there is one, the target at fault.

/** The bake file cannot be read or a field is wrong. */
export class BakeFileInvalid extends UsageError {}

/** The targets' FROM lines make a loop: no order can build them. */
export class HierarchyCycle extends KilnError {}

/** A FROM names no target, no image in the store, and nothing that could be pulled. */
export class BaseUnknown extends KilnError {}

/** The trust policy (policy.yaml) refuses a FROM image from outside the bake. */
export class BaseRefused extends KilnError {}

/** Some targets failed (build, tests or push); the message lists them and the descendants left stale. */
export class BakeFailed extends KilnError {}

/** A target's Dockerfile cannot be read or planned. */
export class TargetInvalid extends KilnError {}
