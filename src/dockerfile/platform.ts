// Platform strings for FROM --platform and the TARGET*/BUILD* predefined args: oci/platform's, with
// a bad string as the frontend's UnlocatedError (its file and line are added where it is read).

import { parsePlatform as parseOciPlatform, PlatformInvalid, type Platform } from '../oci/platform.js';
import { UnlocatedError } from './errors.js';

export { formatPlatform, hostPlatform, type Platform } from '../oci/platform.js';

/** containerd platforms.Parse. `defaults` fills a missing OS or architecture. */
export function parsePlatform(specifier: string, defaults?: Platform): Platform {
  try {
    return parseOciPlatform(specifier, defaults);
  } catch (e) {
    if (e instanceof PlatformInvalid) throw new UnlocatedError(e.message);
    throw e;
  }
}
