// Platform as a value (one module for every part of kiln): containerd's platforms package's parse,
// normalise and format ("linux/arm64", "linux/arm/v7", "amd64"), the host's platform, and matching
// an index's entries (image-spec image-index.md: platform on each manifest descriptor).

import { KilnError } from '../errors.js';
import { isManifest } from './mediatypes.js';
import type { Descriptor, Platform } from './types.js';

export type { Platform } from './types.js';

/** A platform string that containerd's platforms.Parse refuses. */
export class PlatformInvalid extends KilnError {}

const knownOS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const knownArch = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32',
  'mips64p32le', 'ppc', 'ppc64', 'ppc64le', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm',
]);

function normalizeArch(arch: string, variant: string): [string, string] {
  arch = arch.toLowerCase();
  variant = variant.toLowerCase();
  switch (arch) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', variant === 'v1' ? '' : variant];
    case 'aarch64':
    case 'arm64':
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = '';
      else if (variant === '9' || variant === '9.0' || variant === 'v9.0') variant = 'v9';
      return ['arm64', variant];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = 'v' + variant;
      return ['arm', variant];
  }
  return [arch, variant];
}

function normalizeOS(os: string): string {
  os = os.toLowerCase();
  return os === 'macos' ? 'darwin' : os;
}

/** The platform this process runs on, as an OCI platform. */
export function hostPlatform(): Platform {
  const map: Record<string, [string, string]> = {
    x64: ['amd64', ''], arm64: ['arm64', ''], arm: ['arm', 'v7'], ia32: ['386', ''], ppc64: ['ppc64le', ''], s390x: ['s390x', ''], riscv64: ['riscv64', ''], loong64: ['loong64', ''],
  };
  const [architecture, variant] = map[process.arch] ?? [process.arch, ''];
  return variant ? { os: 'linux', architecture, variant } : { os: 'linux', architecture };
}

/** containerd platforms.Parse. `defaults` fills a missing OS or architecture. */
export function parsePlatform(specifier: string, defaults: Platform = hostPlatform()): Platform {
  const invalid = (why: string): never => {
    throw new PlatformInvalid(`"${specifier}": ${why}: invalid argument`);
  };
  if (specifier.includes('*')) invalid('wildcards not yet supported');
  const parts = specifier.split('/');
  for (const p of parts) if (!/^[A-Za-z0-9_.-]+$/.test(p.replace(/\(.*\)$/, ''))) invalid(`"${p}" is an invalid component of "${specifier}"`);
  const make = (os: string, arch: string, variant: string): Platform => (variant ? { os, architecture: arch, variant } : { os, architecture: arch });
  const os = normalizeOS(parts[0]!.replace(/\(.*\)$/, ''));
  switch (parts.length) {
    case 1: {
      if (knownOS.has(os)) return make(os, defaults.architecture, defaults.architecture === 'arm' && defaults.variant !== 'v7' ? defaults.variant ?? '' : '');
      let [arch, variant] = normalizeArch(parts[0]!, '');
      if (arch === 'arm' && variant === 'v7') variant = '';
      if (knownArch.has(arch)) return make(defaults.os, arch, variant);
      return invalid('unknown operating system or architecture');
    }
    case 2: {
      let [arch, variant] = normalizeArch(parts[1]!, '');
      if (arch === 'arm' && variant === 'v7') variant = '';
      return make(os, arch, variant);
    }
    case 3: {
      const [arch, variant] = normalizeArch(parts[1]!, parts[2]!);
      return make(os, arch, arch === 'arm64' && variant === '' ? 'v8' : variant);
    }
  }
  return invalid('cannot parse platform specifier');
}

/** platforms.Format: "os/arch[/variant]". */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined && s !== '').join('/');
}

/** Whether two platforms are one: arm64's v8 is its default variant (containerd platforms.Normalize). */
export function samePlatform(a: Platform, b: Platform): boolean {
  const v = (p: Platform) => (p.architecture === 'arm64' && p.variant === 'v8' ? '' : (p.variant ?? ''));
  return a.os === b.os && a.architecture === b.architecture && v(a) === v(b);
}

/**
 * The entry of an index's manifests for `want`: the one of its OS and architecture (and variant, when
 * both name one); an index of one entry without platform is that entry.
 */
export function selectPlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  const candidates = manifests.filter((m) => isManifest(m.mediaType) || !m.mediaType);
  const exact = candidates.find(
    (m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture && (!want.variant || !m.platform?.variant || m.platform.variant === want.variant),
  );
  return exact ?? (candidates.length === 1 && !candidates[0]!.platform ? candidates[0] : undefined);
}
