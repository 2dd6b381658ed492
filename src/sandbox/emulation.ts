// RUN steps of a foreign platform run under QEMU user-mode emulation through binfmt_misc, as BuildKit
// and buildah do: the kernel hands a foreign ELF to the interpreter registered for its magic. The F
// ("fix binary") flag makes the kernel open the interpreter when it is registered, so it works inside
// the sandbox's mount namespace, where /usr/bin/qemu-*-static does not exist
// (Documentation/admin-guide/binfmt-misc.rst).

import { readFile } from 'node:fs/promises';
import { KilnError } from '../errors.js';
import type { Platform } from '../oci/types.js';

/** A platform's RUN steps cannot run here: no usable interpreter is registered. */
export class EmulatorUnavailable extends KilnError {}

/** KILN_BINFMT_MISC: another directory to read the entries from (tests give it entries without F). */
const binfmtDir = process.env.KILN_BINFMT_MISC ?? '/proc/sys/fs/binfmt_misc';
const procDir = '/proc/sys/fs/binfmt_misc';

/** QEMU's name for an OCI architecture: the binfmt entry is qemu-<name> (Debian's qemu-user-static). */
function qemuName(p: Platform): string | undefined {
  const names: Record<string, string> = {
    amd64: 'x86_64', '386': 'i386', arm64: 'aarch64', arm: 'arm', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', mips64le: 'mips64el', loong64: 'loongarch64',
  };
  return names[p.architecture];
}

/**
 * Throws, saying how to fix it, unless binfmt_misc has an enabled interpreter with the F flag for
 * `platform` (whose executables this machine cannot run natively).
 */
export async function checkEmulation(platform: Platform, name: string = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`): Promise<void> {
  const qemu = qemuName(platform);
  if (!qemu) throw new EmulatorUnavailable(`RUN for ${name}: kiln knows no QEMU emulator for architecture ${platform.architecture}`);
  const entry = `qemu-${qemu}`;
  const install = `apt-get install qemu-user-static binfmt-support && update-binfmts --enable ${entry}`;
  const status = await readFile(`${binfmtDir}/status`, 'utf8').catch(() => undefined);
  if (status === undefined) {
    throw new EmulatorUnavailable(`RUN for ${name} needs QEMU emulation, but binfmt_misc is not mounted: run (as root) mount -t binfmt_misc binfmt_misc ${procDir} && ${install}`);
  }
  if (status.trim() !== 'enabled') throw new EmulatorUnavailable(`RUN for ${name} needs QEMU emulation, but binfmt_misc is disabled: run (as root) echo 1 > ${procDir}/status`);
  const text = await readFile(`${binfmtDir}/${entry}`, 'utf8').catch(() => undefined);
  if (text === undefined) throw new EmulatorUnavailable(`RUN for ${name} needs QEMU emulation, but no ${entry} interpreter is registered with binfmt_misc: run (as root) ${install}`);
  if (text.split('\n')[0]!.trim() !== 'enabled') throw new EmulatorUnavailable(`RUN for ${name}: the ${entry} interpreter is registered but disabled: run (as root) update-binfmts --enable ${entry}`);
  const flags = /^flags:\s*(\S*)/m.exec(text)?.[1] ?? '';
  if (!flags.includes('F')) {
    throw new EmulatorUnavailable(
      `RUN for ${name}: the ${entry} interpreter is registered without the F flag, so it cannot be found inside the sandbox: ` +
        `run (as root) echo -1 > ${procDir}/${entry} && update-binfmts --import ${entry} (Debian's qemu-user-static declares fix_binary yes)`,
    );
  }
}
