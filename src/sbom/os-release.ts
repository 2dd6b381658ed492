// /etc/os-release and /usr/lib/os-release (os-release(5)): shell-style KEY=value lines, values
// optionally quoted with backslash escapes inside double quotes.

export interface Distro {
  id: string;
  versionId?: string;
  codename?: string;
}

export const OS_RELEASE_PATHS = ['/etc/os-release', '/usr/lib/os-release'];

export function parseOsRelease(text: string): Distro | undefined {
  const vars = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) {
      v = v.slice(1, -1);
      if (m[2]![0] === '"') v = v.replace(/\\(["\\$`])/g, '$1');
    }
    vars.set(m[1]!, v);
  }
  // os-release(5): ID defaults to "linux" when unset, but a file without ID tells nothing useful here
  const id = vars.get('ID');
  if (!id) return undefined;
  return { id, versionId: vars.get('VERSION_ID') || undefined, codename: vars.get('VERSION_CODENAME') || undefined };
}
