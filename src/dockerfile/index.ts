// The Dockerfile frontend: parse → plan the stages → dispatch each stage into steps and an image
// config. It never executes anything; the build engine runs the steps and writes the layers.

export { parseDockerfile } from './dockerfile.js';
export type { Dockerfile, ParseOptions, StageSource } from './dockerfile.js';
export type { Directive, Heredoc } from './parser.js';
export type * from './instructions.js';
export { planBuild, requiredSecrets, triggerSources } from './plan.js';
export { parseChanges, type ParsedChanges } from './changes.js';
export { applyChmod, InvalidChmod, parseChmod, type Chmod } from './chmod.js';
export type { BuildPlan, PlanOptions, Platform, SourceRef, StageBase, StagePlan } from './plan.js';
export { dispatchStage, historyComment } from './dispatch.js';
export type {
  CopyStep,
  DispatchOptions,
  RunInlineFile,
  RunMount,
  RunStep,
  StageBaseInput,
  StageBuildState,
  StageProgram,
  Step,
  WorkdirStep,
} from './dispatch.js';
export type { Warning } from './lint.js';
export { EnvList, ShellLex, expandWord, expandWords } from './shell.js';
export type { EnvLookup, LexOptions, WordResult } from './shell.js';
export { createIgnoreMatcher, loadDockerignore, parseDockerignore, DockerignorePatternError } from './dockerignore.js';
export type { IgnoreMatcher } from './dockerignore.js';
export { formatPlatform, hostPlatform, parsePlatform } from './platform.js';
export { DockerfileError, DockerfileExpansionError, DockerfileStageError, DockerfileSyntaxError } from './errors.js';
