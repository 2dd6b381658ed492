// The modules that serve worker threads. Each starts its own thread from its own file
// (`new Worker(import.meta.url)`) and, loaded on a thread, checks `workerData` and serves. In the
// single-file CLI bundle every module's file is the bundle, so a thread starts the bundle's entry
// point, which loads these instead of running a command.
import '../build/filehash.js';
import '../archive/apply-thread.js';
import '../registry/client/blob-thread.js';
