import { InvalidUserSpec, UnknownUser } from './errors.js';
import type { ProcessUser } from './executor.js';
import { readFileInRoot } from './rootpath.js';

// Turning USER and COPY --chown strings into numeric ids, reading the image's own /etc/passwd and
// /etc/group (symlinks resolved inside the rootfs, never on the host).
//
// resolveUser follows runc's libcontainer/user GetExecUser, which is what `docker run --user` and
// BuildKit's RUN use; resolveChown follows BuildKit's llb.WithUser + ops.readUser, which is what
// COPY/ADD --chown use. The two differ on purpose: see resolveChown.

const maxId = 2 ** 31 - 1;
const int64Limit = 2n ** 63n;

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface Ownership {
  uid: number;
  gid: number;
}

/**
 * Resolves a USER spec ("", "name", "uid", "name:group", "uid:gid", "name:gid", "uid:group").
 * - "" is uid 0; a numeric user is always a uid, even when a user of that name exists.
 * - A uid found in passwd takes that entry's primary gid; a numeric uid not in passwd gets gid 0.
 * - A name not in passwd is an error; likewise a non-numeric group not in /etc/group.
 * - Without an explicit group, every /etc/group entry listing the user by name becomes an additional gid
 *   (so root in Alpine gets bin, daemon, sys, …, as with `docker run alpine id`).
 * - The primary gid is always among the additional gids, first unless a group list already names it, as
 *   BuildKit's RUN does (executor/oci/user.go ensureAdditionalGids) and `docker run` too: the runtime's
 *   setgroups(2) takes exactly this list, so without it `id` lists no primary group.
 */
export async function resolveUser(rootfs: string, spec: string): Promise<ProcessUser> {
  const [userArg = '', groupArg = ''] = spec.split(':');
  const uidArg = atoi(userArg);
  const gidArg = atoi(groupArg);
  const passwd = await readPasswd(rootfs);
  let uid = 0;
  let gid = 0;
  let additionalGids: number[] = [];

  const user = passwd?.find((u) => (userArg === '' ? u.uid === 0 : uidArg !== undefined ? u.uid === uidArg : u.name === userArg));
  if (user) {
    uid = user.uid;
    gid = user.gid;
  } else if (userArg !== '') {
    if (uidArg === undefined) throw new UnknownUser(`unable to find user ${userArg}: no matching entries in passwd file`);
    uid = checkRange(uidArg);
  }

  if (groupArg !== '' || user) {
    const groups = await readGroup(rootfs);
    if (groupArg !== '') {
      const group = groups?.find((g) => (gidArg !== undefined ? g.gid === gidArg : g.name === groupArg));
      if (group) gid = group.gid;
      else if (gidArg === undefined) throw new UnknownUser(`unable to find group ${groupArg}: no matching entries in group file`);
      else gid = checkRange(gidArg);
    } else {
      // Supplementary groups only in the implicit form: "name:group" means exactly that group.
      additionalGids = (groups ?? []).filter((g) => g.members.includes(user!.name)).map((g) => g.gid);
    }
  }
  return { uid, gid, additionalGids: additionalGids.includes(gid) ? additionalGids : [gid, ...additionalGids] };
}

/**
 * Resolves COPY/ADD --chown the way BuildKit does (llb.WithUser, solver readUser):
 * - "root" and 32-bit integers are ids without any lookup; a numeric user alone means uid = gid = that number;
 * - a user name takes uid and primary gid from the image's passwd; a group name takes its gid from /etc/group;
 * - a name BuildKit cannot find (or a missing passwd/group file) silently leaves the id at 0, and
 *   "user:" (empty group) means gid 0. kiln reproduces this so a Dockerfile yields the same image.
 */
export async function resolveChown(rootfs: string, spec: string): Promise<Ownership> {
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? undefined : spec.slice(colon + 1);
  const owner: Ownership = { uid: 0, gid: 0 };

  const uid = chownId(userPart);
  if (uid !== undefined) {
    owner.uid = uid;
    owner.gid = uid;
  } else if (userPart !== '') {
    const user = (await readPasswd(rootfs))?.find((u) => u.name === userPart);
    if (user) {
      owner.uid = user.uid;
      owner.gid = user.gid;
    }
  }

  if (groupPart !== undefined) {
    const gid = chownId(groupPart);
    if (gid !== undefined) owner.gid = gid;
    else if (groupPart === '') owner.gid = 0;
    else {
      const group = (await readGroup(rootfs))?.find((g) => g.name === groupPart);
      if (group) owner.gid = group.gid;
    }
  }
  return owner;
}

/**
 * The HOME runc gives a process whose environment has none: the home directory of the first passwd
 * entry with that uid, else "/".
 */
export async function homeDirectory(rootfs: string, uid: number): Promise<string> {
  return (await readPasswd(rootfs))?.find((u) => u.uid === uid)?.home ?? '/';
}

/** BuildKit parseUID: "root" is 0, otherwise a base-10 integer that fits in 32 bits. */
/** Whether a --chown spec names a user or group by name, to be looked up in the root filesystem's /etc/passwd or /etc/group. */
export function chownNamesAccount(spec: string): boolean {
  return spec.split(':', 2).some((part) => part !== '' && !/^[+-]?[0-9]+$/.test(part) && part !== 'root');
}

function chownId(s: string): number | undefined {
  if (s === 'root') return 0;
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  if (n < -(2 ** 31) || n > maxId) return undefined;
  // A negative id would reach lchown(2) as "leave unchanged"; refuse it rather than copy that accident.
  if (n < 0) throw new InvalidUserSpec(`invalid --chown id ${s}: ids must be in range 0-${maxId}`);
  return n;
}

/** Go's strconv.Atoi: optional sign, decimal digits, fits in int64; anything else is "not a number". */
function atoi(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const big = BigInt(s);
  if (big >= int64Limit || big < -int64Limit) return undefined;
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : big < -BigInt(Number.MAX_SAFE_INTEGER) ? -Number.MAX_SAFE_INTEGER : Number(big);
}

function checkRange(id: number): number {
  if (id < 0 || id > maxId) throw new InvalidUserSpec(`uids and gids must be in range 0-${maxId}`);
  return id;
}

/** Numeric fields that do not parse count as 0, as in runc's parseLine. */
function field(s: string | undefined): number {
  return atoi(s ?? '') ?? 0;
}

async function readPasswd(rootfs: string): Promise<PasswdEntry[] | undefined> {
  const text = await readFileInRoot(rootfs, '/etc/passwd');
  if (text === undefined) return undefined;
  const out: PasswdEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    // name:password:UID:GID:GECOS:directory:shell (man 5 passwd)
    const [name = '', , uid, gid, , home = ''] = line.split(':');
    out.push({ name, uid: field(uid), gid: field(gid), home });
  }
  return out;
}

async function readGroup(rootfs: string): Promise<GroupEntry[] | undefined> {
  const text = await readFileInRoot(rootfs, '/etc/group');
  if (text === undefined) return undefined;
  const out: GroupEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // runc skips comments in /etc/group (as glibc does) but not in /etc/passwd.
    if (line === '' || line.startsWith('#')) continue;
    // group_name:password:GID:user_list (man 5 group)
    const [name = '', , gid, list = ''] = line.split(':');
    out.push({ name, gid: field(gid), members: list === '' ? [] : list.split(',') });
  }
  return out;
}
