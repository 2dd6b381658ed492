// Parallel gzip: CPU time over wall time while compressing 200 MB (about 1.0 means one core).
// Run: node dist/bench/gzip.js
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { cpus } from 'node:os';
import { compress } from '../src/archive/index.js';

const block = Buffer.concat([randomBytes(1 << 19), Buffer.alloc(1 << 19, 'kiln ')]);
const total = 200;
const source = () => Readable.from((function* () { for (let i = 0; i < total; i++) yield block; })());
const cpu = process.cpuUsage();
const t0 = performance.now();
let out = 0;
await pipeline(compress(source(), 'gzip'), new Writable({ write(c: Buffer, _e, cb) { out += c.length; cb(); } }));
const wall = performance.now() - t0;
const used = process.cpuUsage(cpu);
const t1 = performance.now();
for (let i = 0; i < 20; i++) gzipSync(block);
const serialPerBlock = (performance.now() - t1) / 20;
console.log(`| measure | value |\n| --- | --- |`);
console.log(`| date | ${new Date().toISOString().slice(0, 10)} |\n| machine | ${cpus()[0]?.model} × ${cpus().length} |`);
console.log(`| kiln parallel gzip of ${total} MiB | ${(wall / 1000).toFixed(2)} s (${(out / 2 ** 20).toFixed(1)} MiB out) |`);
console.log(`| CPU time / wall time | ${((used.user + used.system) / 1000 / wall).toFixed(2)} |`);
console.log(`| serial zlib estimate | ${((serialPerBlock * total) / 1000).toFixed(2)} s |`);
