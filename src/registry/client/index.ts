// The distribution client: kiln talking to OCI registries (pull, push, login) with docker's
// credentials and kiln's registries configuration. The build engine calls pullImage for FROM images.

export { pullImage, pull, listRemoteTags, DefaultConcurrency, type PullOptions, type PullResult } from './pull.js';
export { pushImage, type PushOptions, type PushResult } from './push.js';
export { promoteRemote, type PromoteOptions, type PromoteResult } from './promote.js';
export { login, logout, type LoginOptions } from './login.js';
export { loadRegistriesConfig, parseRegistriesConfig, configPath, pullEndpoints, pushEndpoint, isLoopback, type RegistriesConfig, type Endpoint } from './config.js';
export { findCredential, dockerConfigPath, containersAuthPaths, type Credential } from './credentials.js';
export type { TransferEvent, BlobState, ProgressListener } from './progress.js';
export type { RetryPolicy } from './http.js';
export * from './errors.js';
