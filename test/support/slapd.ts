// A throwaway OpenLDAP server for tests (Debian's slapd and ldap-utils): its own cn=config made
// by slapadd into a slapd.d directory in a temporary directory, one mdb database for the suffix,
// a root DN with a password, and a loopback port. It runs as the current user, in the foreground
// (-d 0), so the PID is slapd's own, and it is stopped by that PID. Anonymous users may only bind
// (the ACL), so a client must bind before it can search. Entries go in with ldapadd and change
// with ldapmodify, as an administrator would do it.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, requireBinary, runToLog, startDaemon, waitUntil, type Daemon, type TestContextLike } from './daemon.js';

export interface Slapd {
  /** ldap://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** dc=kiln,dc=test */
  readonly suffix: string;
  /** cn=admin,<suffix>: may write everything. */
  readonly rootDN: string;
  readonly rootPassword: string;
  readonly logFile: string;
  /** With `tls`: ldaps://127.0.0.1:PORT2, and the PEM of its self-signed certificate (for 127.0.0.1 and localhost), also used by StartTLS on `url`. */
  readonly ldapsUrl?: string;
  readonly caFile?: string;
  /** ldapadd as the root DN. */
  add(ldif: string): Promise<void>;
  /** ldapmodify as the root DN. */
  modify(ldif: string): Promise<void>;
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
}

/**
 * RFC 4514 section 2.4: an attribute value inside a DN, with `"` `+` `,` `;` `<` `>` `\` escaped,
 * a leading `#` or space and a trailing space escaped.
 */
export function escapeDnValue(v: string): string {
  let s = v.replace(/["+,;<>\\]/g, (c) => '\\' + c);
  if (s.startsWith('#') || s.startsWith(' ')) s = '\\' + s;
  if (s.endsWith(' ')) s = s.slice(0, -1) + '\\ ';
  return s;
}

/** An LDIF line `attr: value`, base64 (`attr:: …`) when the value is not plain ASCII (RFC 2849). */
export function ldifLine(attr: string, value: string): string {
  return /^[\x21-\x39\x3b\x3d-\x7e][\x20-\x7e]*$/.test(value) && !value.endsWith(' ') ? `${attr}: ${value}` : `${attr}:: ${Buffer.from(value, 'utf8').toString('base64')}`;
}

const suffix = 'dc=kiln,dc=test';
const rootPassword = 'slapd-root-password';

function configLdif(dir: string, tls: boolean): string {
  const tlsLines = tls ? `olcTLSCACertificateFile: ${dir}/cert.pem\nolcTLSCertificateFile: ${dir}/cert.pem\nolcTLSCertificateKeyFile: ${dir}/key.pem\n` : '';
  return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
${tlsLines}
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${suffix}
olcRootDN: cn=admin,${suffix}
olcRootPW: ${rootPassword}
olcDbDirectory: ${dir}/data
olcDbMaxSize: 33554432
olcDbNoSync: TRUE
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by users read by * none
`;
}

/**
 * Starts slapd with an empty suffix entry; it is stopped and its directory removed when the test (or
 * suiteScope()) ends. With `tls`, it also listens for ldaps:// and takes StartTLS, with a
 * self-signed certificate made by openssl.
 */
export async function startSlapd(t: TestContextLike, opts: { tls?: boolean } = {}): Promise<Slapd> {
  requireBinary('/usr/sbin/slapd', 'slapd');
  requireBinary('/usr/bin/ldapadd', 'ldap-utils');
  const dir = await mkdtemp(join(tmpdir(), 'kiln-slapd-'));
  let server: Daemon | undefined;
  t.after(async () => {
    await server?.stop('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });
  const logFile = join(dir, 'slapd.log');
  await mkdir(join(dir, 'slapd.d'));
  await mkdir(join(dir, 'data'));
  const tls = opts.tls === true;
  if (tls) {
    await runToLog('/usr/bin/openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { logFile });
  }
  await writeFile(join(dir, 'config.ldif'), configLdif(dir, tls));
  await runToLog('/usr/sbin/slapadd', ['-n', '0', '-F', join(dir, 'slapd.d'), '-l', join(dir, 'config.ldif')], { logFile });

  let port = 0;
  let url = '';
  let ldapsUrl: string | undefined;
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
  const start = async (): Promise<Daemon> => {
    const listen = ldapsUrl ? `${url}/ ${ldapsUrl}/` : `${url}/`;
    const d = startDaemon('slapd', '/usr/sbin/slapd', ['-h', listen, '-F', join(dir, 'slapd.d'), '-d', '0'], { logFile, cwd: dir });
    try {
      await waitUntil(d, 'listening', listening, 15_000, 20);
    } catch (err) {
      await d.stop('SIGKILL');
      throw err;
    }
    return d;
  };
  // another process may take the free port before slapd binds it: try a new one
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    url = `ldap://127.0.0.1:${port}`;
    if (tls) ldapsUrl = `ldaps://127.0.0.1:${await freePort()}`;
    try {
      server = await start();
      break;
    } catch (err) {
      if (!/Address already in use|daemon: bind/.test(await logTail(logFile, 10)) || attempt === 3) throw err;
    }
  }
  const rootDN = `cn=admin,${suffix}`;
  const tool = (cmd: string) => async (ldif: string) => {
    const f = join(dir, `input-${Date.now()}-${Math.random().toString(36).slice(2)}.ldif`);
    await writeFile(f, ldif);
    await runToLog(cmd, ['-x', '-H', url, '-D', rootDN, '-w', rootPassword, '-f', f], { logFile, timeoutMs: 10_000 });
  };
  const slapd: Slapd = {
    url,
    port,
    suffix,
    rootDN,
    rootPassword,
    logFile,
    ...(tls ? { ldapsUrl, caFile: join(dir, 'cert.pem') } : {}),
    add: tool('/usr/bin/ldapadd'),
    modify: tool('/usr/bin/ldapmodify'),
    stop: async () => {
      await server?.stop('SIGTERM');
    },
    start: async () => {
      if (!server?.running()) server = await start();
    },
  };
  await slapd.add(`dn: ${suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: kiln\no: kiln tests\n`);
  return slapd;
}
