// RUN --mount specifications, parsed as BuildKit's instructions/commands_runmount.go parses them.

import { UnlocatedError } from './errors.js';
import { goQuote, parseGoBool, parseGoUint32, ramInBytes, suggest } from './gocompat.js';

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
export type MountSharing = 'shared' | 'private' | 'locked';

/** A --mount value after parsing (and, at dispatch, variable expansion). */
export interface MountSpec {
  type: MountType;
  /** Stage name or image the mount's source comes from ("" = the build context). */
  from: string;
  source: string;
  target: string;
  readOnly: boolean;
  /** tmpfs size in bytes, 0 = unlimited. */
  sizeLimit: number;
  /** `id=`: cache id, secret id or ssh id. */
  id: string;
  sharing: MountSharing | '';
  required: boolean;
  /** Secret exposed as this environment variable. */
  env?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

const mountTypes: MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const sharingModes: MountSharing[] = ['shared', 'private', 'locked'];
const allKeys = ['type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid', 'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env'];

/** encoding/csv style fields of one record: commas separate, double quotes quote, "" is a quote. */
export function csvFields(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new UnlocatedError(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw new UnlocatedError(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
    } else {
      while (i < line.length && line[i] !== ',') {
        if (line[i] === '"') throw new UnlocatedError('failed to parse csv mounts: bare " in non-quoted-field');
        field += line[i++];
      }
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // comma
  }
}

/**
 * Parses one --mount value. Without an expander (parse time) only `from` is read, as BuildKit does to
 * reject variables in it; with one (dispatch time) every value is expanded first.
 */
export function parseMountSpec(val: string, expander: ((word: string) => string) | undefined): MountSpec {
  const m: MountSpec = { type: 'bind', from: '', source: '', target: '', readOnly: false, sizeLimit: 0, id: '', sharing: '', required: false };
  let roAuto = true;
  for (const field of csvFields(val)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    let value = eq < 0 ? '' : field.slice(eq + 1);
    if (eq < 0) {
      if (!expander) continue;
      switch (key) {
        case 'readonly':
        case 'ro':
          m.readOnly = true;
          roAuto = false;
          continue;
        case 'readwrite':
        case 'rw':
          m.readOnly = false;
          roAuto = false;
          continue;
        case 'required':
          if (m.type === 'secret' || m.type === 'ssh') {
            m.required = true;
            continue;
          }
          throw new UnlocatedError(`unexpected key '${key}' for mount type '${m.type}'`);
        default:
          throw new UnlocatedError(`invalid field '${field}' must be a key=value pair`);
      }
    }
    if (expander) {
      value = expander(value);
    } else if (key === 'from') {
      const idx = value.indexOf('$');
      if (idx !== -1 && idx !== value.length - 1) throw new UnlocatedError(`'${key}' doesn't support variable expansion, define alias stage instead`);
    } else {
      continue;
    }
    const bool = (): boolean => {
      const b = parseGoBool(value);
      if (b === undefined) throw new UnlocatedError(`invalid value for ${key}: ${value}`);
      return b;
    };
    switch (key) {
      case 'type': {
        const t = value.toLowerCase() as MountType;
        if (!mountTypes.includes(t)) {
          const s = suggest(value, mountTypes, true);
          throw new UnlocatedError(`unsupported mount type ${goQuote(value)}${s ? ` (did you mean ${s}?)` : ''}`);
        }
        m.type = t;
        break;
      }
      case 'from':
        m.from = value;
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'readonly':
      case 'ro':
        m.readOnly = bool();
        roAuto = false;
        break;
      case 'readwrite':
      case 'rw':
        m.readOnly = !bool();
        roAuto = false;
        break;
      case 'required':
        if (m.type !== 'secret' && m.type !== 'ssh') throw new UnlocatedError(`unexpected key '${key}' for mount type '${m.type}'`);
        m.required = bool();
        break;
      case 'size': {
        if (m.type !== 'tmpfs') throw new UnlocatedError(`unexpected key '${key}' for mount type '${m.type}'`);
        const n = ramInBytes(value);
        if (n === undefined) throw new UnlocatedError(`invalid value for ${key}: ${value}`);
        m.sizeLimit = n;
        break;
      }
      case 'id':
        m.id = value;
        break;
      case 'sharing': {
        const s = value.toLowerCase() as MountSharing;
        if (!sharingModes.includes(s)) {
          const hint = suggest(value, sharingModes, true);
          throw new UnlocatedError(`unsupported sharing value ${goQuote(value)}${hint ? ` (did you mean ${hint}?)` : ''}`);
        }
        m.sharing = s;
        break;
      }
      case 'mode': {
        const n = parseGoUint32(value, 8);
        if (n === undefined) throw new UnlocatedError(`invalid value ${value} for mode`);
        m.mode = n;
        break;
      }
      case 'uid':
      case 'gid': {
        const n = parseGoUint32(value, 10);
        if (n === undefined) throw new UnlocatedError(`invalid value ${value} for ${key}`);
        m[key] = n;
        break;
      }
      case 'env':
        m.env = value;
        break;
      default: {
        const s = suggest(key, allKeys, true);
        throw new UnlocatedError(`unexpected key '${key}' in '${field}'${s ? ` (did you mean ${s}?)` : ''}`);
      }
    }
  }

  const fileInfoAllowed = m.type === 'secret' || m.type === 'ssh' || m.type === 'cache';
  if (!fileInfoAllowed) {
    if (m.mode !== undefined) throw new UnlocatedError(`mode not allowed for ${goQuote(m.type)} type mounts`);
    if (m.uid !== undefined) throw new UnlocatedError(`uid not allowed for ${goQuote(m.type)} type mounts`);
    if (m.gid !== undefined) throw new UnlocatedError(`gid not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (roAuto) m.readOnly = !(m.type === 'cache' || m.type === 'tmpfs');
  if (m.type === 'secret') {
    if (m.from !== '') throw new UnlocatedError('secret mount should not have a from');
    if (m.sharing !== '') throw new UnlocatedError('secret mount should not define sharing');
    if (m.source === '' && m.target === '' && m.id === '') throw new UnlocatedError('invalid secret mount. one of source, target required');
    if (m.source !== '' && m.id !== '') throw new UnlocatedError("both source and id can't be set");
  }
  if (m.sharing !== '' && m.type !== 'cache') throw new UnlocatedError(`invalid cache sharing set for ${m.type} mount`);
  return m;
}
