import type { Command } from 'commander';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { attach, provenance, ProvenanceType, SpdxType, storedSpdx } from '../sign/provenance.js';
import { openStore, type GlobalOptions } from './context.js';

// kiln build --provenance and --attest-key: attestations of the built image, as docker buildx's
// --provenance and --sbom make them (BuildKit docs, "Build attestations"): an in-toto statement
// whose subject is the image, kept with it and pushed with it. buildx stores them unsigned, as
// extra manifests of the image index (platform unknown/unknown); kiln keeps them as OCI referrers
// of the image instead, which the store, kiln push and kiln save already carry for SBOMs and
// signatures, and which work for a single image as well as an index. With --attest-key they are
// signed, the form kiln attest writes (a Sigstore bundle), so kiln verify-attestation checks them;
// the SBOM of --sbom is then attested too (spdxjson).
//
// These options wrap the build command (as build-extras.ts does): registered before
// build-extras', this preAction runs first and this postAction last (commander runs postAction
// hooks in reverse), after the manifest annotations are written, so the subject is final.

interface AttestFlags {
  provenance?: boolean;
  attestKey?: string;
  sbom?: boolean;
  iidfile?: string;
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  platform?: string;
}

export function extendBuildAttestations(program: Command, globals: () => GlobalOptions): void {
  const build = program.commands.find((c) => c.name() === 'build');
  if (!build) return;
  build
    .option('--provenance', 'record SLSA provenance v1 of the build as an attestation of the image (kept and pushed with it)')
    .option('--attest-key <file>', 'sign the --provenance and --sbom attestations with this key (cosign\'s format or plain PEM; password from $KILN_PASSWORD or $COSIGN_PASSWORD)');
  let pending: { startedOn: string; iidfile?: string } | undefined;
  build
    .hook('preAction', (_cmd, action) => {
      const o = action.opts<AttestFlags>();
      if (o.attestKey && !o.provenance && !o.sbom) throw new UsageError('--attest-key signs the attestations of --provenance or --sbom: give one of them');
      if (!o.provenance && !(o.sbom && o.attestKey)) return;
      pending = { startedOn: new Date().toISOString() };
      if (!o.iidfile) o.iidfile = pending.iidfile = join(tmpdir(), `kiln-iid-attest-${process.pid}-${Date.now()}`);
    })
    .hook('postAction', async (_cmd, action) => {
      if (!pending) return;
      const o = action.opts<AttestFlags>();
      const store = await openStore(globals());
      const id = (await readFile(o.iidfile!, 'utf8')).trim();
      if (pending.iidfile) await rm(pending.iidfile, { force: true });
      const built = o.tag.length ? await store.resolveImage(o.tag[0]!) : await store.resolveImage(id);
      const { distributableImage } = await import('../registry/client/push.js');
      // The digest that kiln push will send: the one the attestations name.
      const image = await distributableImage(store, built);
      const key = o.attestKey ? await attestKey(o.attestKey) : undefined;
      const written: string[] = [];
      if (o.provenance) {
        const contextDir = resolve(String(action.args[0] ?? '.'));
        const args: Record<string, string> = {};
        for (const a of o.buildArg) {
          const i = a.indexOf('=');
          const v = i < 0 ? process.env[a] : a.slice(i + 1);
          if (v !== undefined) args[i < 0 ? a : a.slice(0, i)] = v;
        }
        const predicate = await provenance(store, {
          contextDir,
          dockerfile: o.file && o.file !== '-' ? resolve(o.file) : join(contextDir, 'Dockerfile'),
          buildArgs: args,
          ...(o.target ? { target: o.target } : {}),
          ...(o.platform ? { platform: o.platform } : {}),
          startedOn: pending.startedOn,
        });
        written.push(await attach(store, image, ProvenanceType, predicate, key));
      }
      if (o.sbom && key) {
        const spdx = await storedSpdx(store, image);
        if (spdx) written.push(await attach(store, image, SpdxType, spdx, key));
      }
      for (const w of written) process.stderr.write(`${w}\n`);
    });
}

export async function attestKey(file: string) {
  const { readPrivateKey } = await import('../sign/keys.js');
  const password = process.env.KILN_PASSWORD ?? process.env.COSIGN_PASSWORD;
  return readPrivateKey(await readFile(file, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`--attest-key ${file}: ${e.message}`))), file, async () => {
    if (password === undefined) throw new UsageError(`a password is needed for ${file}: set KILN_PASSWORD (or COSIGN_PASSWORD)`);
    return password;
  });
}

