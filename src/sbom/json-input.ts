// Reading advisory files a user downloaded: JSON, optionally gzip-compressed (the tracker's export is
// often kept as json.gz), with errors that name the file and the JSON path of the bad value.

import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { AdvisoryInvalid } from './errors.js';

export async function readJsonFile(file: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new AdvisoryInvalid(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new AdvisoryInvalid(`${file}: broken gzip data: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new AdvisoryInvalid(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** A JSON path in the `$.a.b[0]["c d"]` form. */
export function jsonPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

export type JsonObject = Record<string, unknown>;

/** Checks of a value's JSON type, failing with the file and the path. */
export class JsonShape {
  constructor(readonly file: string) {}

  fail(path: string, message: string): never {
    throw new AdvisoryInvalid(`${this.file}: ${path}: ${message}`);
  }

  object(v: unknown, path: string): JsonObject {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `expected an object, found ${describe(v)}`);
    return v as JsonObject;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected an array, found ${describe(v)}`);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, `expected a string, found ${describe(v)}`);
    return v;
  }

  optionalString(v: unknown, path: string): string | undefined {
    return v === undefined || v === null ? undefined : this.string(v, path);
  }

  optionalObject(v: unknown, path: string): JsonObject | undefined {
    return v === undefined || v === null ? undefined : this.object(v, path);
  }

  optionalArray(v: unknown, path: string): unknown[] {
    return v === undefined || v === null ? [] : this.array(v, path);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}
