// Working containers, daemonless as buildah's: a container is a directory in the store with a config,
// a state, and an overlay upper directory; the sandbox runs it, the snapshotter mounts it, commit turns
// its changes into an image.

export { createFromImage, runAttached, startDetached, supervise, superviseCommand, stopContainer, killContainer, removeContainer, type CreateOptions, type Stdio } from './run.js';
export { listContainers, resolveContainer, readState, type Container, type ContainerRecord, type ContainerState } from './record.js';
export { commandLine, parseEnvFile, type RunOptions } from './config.js';
export { containerChanges, changesOf, formatChange, type Change } from './diff.js';
export { commitContainer, applyChanges, type CommitOptions } from './commit.js';
export { exportContainer, copyFromContainer, copyToContainer } from './copy.js';
export { readLog } from './logs.js';
export { inspectContainer } from './describe.js';
export { ContainerUnknown, ContainerStateError, NameInUse, StartFailed, CopyPathError } from './errors.js';
