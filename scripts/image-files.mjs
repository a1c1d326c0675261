#!/usr/bin/env node
// Lists every path of a container image with what decides how it behaves: its kind, mode, owner,
// size, SHA-256 (regular files), file capabilities (decoded as getcap writes them) and link target,
// one line each, sorted by path. Two listings of the same image are identical, whichever engine
// made them, so an operator can compare the image they run with the one CI built (diff, or compare
// the listings' own sha256sum). See container/README.md.
//
//   node scripts/image-files.mjs IMAGE                       # podman save IMAGE, then list
//   node scripts/image-files.mjs --engine docker IMAGE       # docker save IMAGE, then list
//   node scripts/image-files.mjs --archive FILE.tar          # a saved image (docker-archive or OCI)
//   npm run -s image:files -- IMAGE
//
// It reads the image's layers as saved (not a container made from it, to which an engine adds its
// own files), applies them in order with their whiteouts, and lists the result:
//   TYPE MODE UID:GID SIZE SHA256 CAPABILITIES PATH [-> TARGET]
// TYPE: f file, d directory, l symlink, h hard link (listed with its target's size and SHA-256),
// c/b character/block device, p fifo. '-' where a column does not apply. Other extended
// attributes, if any, follow the capabilities as name=hex.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';

const BLOCK = 512;
const TYPES = { '0': 'f', '\0': 'f', '7': 'f', '1': 'h', '2': 'l', '3': 'c', '4': 'b', '5': 'd', '6': 'p' };
// Linux capability numbers (include/uapi/linux/capability.h).
const CAPS = ['chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap', 'linux_immutable', 'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice', 'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write', 'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf', 'checkpoint_restore'];

function fail(message) {
  process.stderr.write(`image-files: ${message}\n`);
  process.exit(1);
}

/** A numeric header field: octal text, or base-256 when its first byte has the high bit set. */
function num(field) {
  if (field[0] & 0x80) {
    let n = BigInt(field[0] & 0x7f);
    for (const b of field.subarray(1)) n = (n << 8n) | BigInt(b);
    return Number(n);
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

const str = (field) => {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
};

/** A pax extended header's records (`LEN key=value\n`), values kept as bytes (xattrs are binary). */
function paxRecords(data) {
  const out = new Map();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const len = parseInt(data.subarray(at, space).toString('latin1'), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, at + len - 1);
    const eq = record.indexOf(0x3d);
    out.set(record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1));
    at += len;
  }
  return out;
}

/**
 * Reads a tar stream, calling onEntry(entry) for each member with its data hashed:
 * { path, type, mode, uid, gid, size, sha256, link, xattrs }. Handles ustar, pax (x, g) and GNU
 * long names (L, K).
 */
async function readTar(stream, onEntry) {
  let buf = Buffer.alloc(0);
  let current = null; // the member whose data is being read
  let remaining = 0;
  let padding = 0;
  let pending = new Map(); // pax records for the next member
  let longName = null;
  let longLink = null;
  let ended = false;
  const finish = () => {
    const { kind, header, data, hash } = current;
    if (kind === 'x') pending = new Map([...pending, ...paxRecords(Buffer.concat(data))]);
    else if (kind === 'L') longName = str(Buffer.concat(data));
    else if (kind === 'K') longLink = str(Buffer.concat(data));
    else if (kind === 'member') {
      const xattrs = new Map();
      for (const [k, v] of pending) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
      const text = (k) => (pending.has(k) ? pending.get(k).toString('utf8') : undefined);
      const prefix = str(header.subarray(345, 500));
      const name = longName ?? text('path') ?? (prefix ? `${prefix}/${str(header.subarray(0, 100))}` : str(header.subarray(0, 100)));
      const type = TYPES[String.fromCharCode(header[156])] ?? `?${String.fromCharCode(header[156])}`;
      onEntry({
        path: name,
        type,
        mode: num(header.subarray(100, 108)) & 0o7777,
        uid: Number(text('uid') ?? num(header.subarray(108, 116))),
        gid: Number(text('gid') ?? num(header.subarray(116, 124))),
        size: type === 'f' ? Number(text('size') ?? num(header.subarray(124, 136))) : 0,
        sha256: type === 'f' ? hash.digest('hex') : undefined,
        link: type === 'l' || type === 'h' ? (longLink ?? text('linkpath') ?? str(header.subarray(157, 257))) : undefined,
        xattrs,
      });
      pending = new Map();
      longName = null;
      longLink = null;
    }
    current = null;
  };
  const consume = () => {
    for (;;) {
      if (current !== null) {
        if (remaining > 0) {
          if (buf.length === 0) return;
          const take = buf.subarray(0, Math.min(remaining, buf.length));
          if (current.hash) current.hash.update(take);
          else if (current.data) current.data.push(Buffer.from(take));
          remaining -= take.length;
          buf = buf.subarray(take.length);
          if (remaining > 0) return;
        }
        if (buf.length < padding) return;
        buf = buf.subarray(padding);
        finish();
        continue;
      }
      if (ended || buf.length < BLOCK) return;
      const header = buf.subarray(0, BLOCK);
      buf = buf.subarray(BLOCK);
      if (header.every((b) => b === 0)) {
        ended = true; // the archive's end (two zero blocks); what follows is padding
        return;
      }
      const flag = String.fromCharCode(header[156]);
      const size = pending.has('size') && flag !== 'x' && flag !== 'g' ? Number(pending.get('size').toString('utf8')) : num(header.subarray(124, 136));
      const kind = flag === 'x' ? 'x' : flag === 'g' ? 'g' : flag === 'L' ? 'L' : flag === 'K' ? 'K' : 'member';
      // Only regular files carry data that is listed; hard links, devices and directories carry none.
      const hashed = kind === 'member' && (TYPES[flag] === 'f');
      current = { kind, header: Buffer.from(header), data: kind === 'member' ? null : [], hash: hashed ? createHash('sha256') : null };
      remaining = size;
      padding = (BLOCK - (size % BLOCK)) % BLOCK;
    }
  };
  for await (const chunk of stream) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    consume();
  }
  if (current !== null && remaining === 0) finish();
  if (current !== null) throw new Error('the archive ends inside a member');
}

/** The outer archive's members: name -> { offset, size } (data not read). */
function indexArchive(file) {
  const fd = openSync(file, 'r');
  const members = new Map();
  const header = Buffer.alloc(BLOCK);
  let at = 0;
  let longName = null;
  let paxPath = null;
  try {
    for (;;) {
      if (readSync(fd, header, 0, BLOCK, at) < BLOCK || header.every((b) => b === 0)) break;
      const flag = String.fromCharCode(header[156]);
      const size = num(header.subarray(124, 136));
      const data = at + BLOCK;
      const read = () => {
        const b = Buffer.alloc(size);
        readSync(fd, b, 0, size, data);
        return b;
      };
      if (flag === 'L') longName = str(read());
      else if (flag === 'x') paxPath = paxRecords(read()).get('path')?.toString('utf8') ?? null;
      else if (flag !== 'g') {
        const prefix = str(header.subarray(345, 500));
        const name = longName ?? paxPath ?? (prefix ? `${prefix}/${str(header.subarray(0, 100))}` : str(header.subarray(0, 100)));
        members.set(name.replace(/^\.\//, ''), { offset: data, size });
        longName = null;
        paxPath = null;
      }
      at = data + Math.ceil(size / BLOCK) * BLOCK;
    }
  } finally {
    closeSync(fd);
  }
  return members;
}

/** A member's bytes, read whole (for the small JSON files). */
function readMember(file, m) {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(m.size);
    readSync(fd, b, 0, m.size, m.offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** The image's layers, bottom first, as members of the archive (docker-archive's manifest.json, or an OCI layout's index). */
function layersOf(file, members) {
  const member = (name) => members.get(name) ?? fail(`${file}: no ${name} in the archive`);
  const json = (name) => JSON.parse(readMember(file, member(name)).toString('utf8'));
  if (members.has('manifest.json')) {
    const manifest = json('manifest.json');
    if (!Array.isArray(manifest) || manifest.length !== 1) fail(`${file}: manifest.json holds ${Array.isArray(manifest) ? manifest.length : 'no'} images; save one`);
    return manifest[0].Layers.map((l) => member(l));
  }
  if (members.has('index.json')) {
    const blob = (digest) => `blobs/${digest.replace(':', '/')}`;
    let node = json('index.json');
    while (node.manifests) {
      const linux = node.manifests.filter((m) => !m.platform || (m.platform.os === 'linux' && m.platform.architecture === 'amd64'));
      if (linux.length === 0) fail(`${file}: no linux/amd64 image in the OCI index`);
      node = json(blob(linux[0].digest));
    }
    return node.layers.map((l) => member(blob(l.digest)));
  }
  return fail(`${file}: neither manifest.json (docker-archive) nor index.json (OCI layout): not a saved image`);
}

/** The filesystem the layers make: path -> entry, whiteouts applied. */
async function applyLayers(file, layers) {
  const tree = new Map();
  const under = (dir) => (p) => p === dir || p.startsWith(`${dir}/`);
  for (const [n, layer] of layers.entries()) {
    const head = readMember(file, { offset: layer.offset, size: Math.min(2, layer.size) });
    let stream = createReadStream(file, { start: layer.offset, end: layer.offset + layer.size - 1 });
    if (head[0] === 0x1f && head[1] === 0x8b) stream = stream.pipe(createGunzip());
    await readTar(stream, (entry) => {
      const path = `/${entry.path.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '')}`;
      const slash = path.lastIndexOf('/');
      const dir = path.slice(0, slash) || '/';
      const base = path.slice(slash + 1);
      if (base === '.wh..wh..opq') {
        // An opaque directory: what lower layers had under it is gone.
        for (const [p, e] of tree) if (e.layer < n && p !== dir && under(dir === '/' ? '' : dir)(p)) tree.delete(p);
        return;
      }
      if (base.startsWith('.wh.')) {
        const gone = `${dir === '/' ? '' : dir}/${base.slice(4)}`;
        for (const p of [...tree.keys()]) if (under(gone)(p)) tree.delete(p);
        return;
      }
      if (path === '/') return;
      tree.set(path, { ...entry, path, layer: n });
    });
  }
  // Hard links: the target's content (a link's target is a path in the image, without its leading slash).
  for (const e of tree.values()) {
    if (e.type !== 'h') continue;
    const target = tree.get(`/${e.link.replace(/^(\.\/|\/)+/, '')}`);
    if (target) Object.assign(e, { size: target.size, sha256: target.sha256 });
  }
  return tree;
}

/** security.capability (struct vfs_cap_data) as getcap writes it: cap_a,cap_b=ep. */
function capabilities(v) {
  if (v.length < 20) return `invalid(${v.toString('hex')})`;
  const magic = v.readUInt32LE(0);
  const effective = (magic & 1) === 1;
  const permitted = BigInt(v.readUInt32LE(4)) | (BigInt(v.readUInt32LE(12)) << 32n);
  const inheritable = BigInt(v.readUInt32LE(8)) | (BigInt(v.readUInt32LE(16)) << 32n);
  const groups = new Map();
  for (let c = 0; c < 64; c++) {
    const bit = 1n << BigInt(c);
    const p = (permitted & bit) !== 0n;
    const i = (inheritable & bit) !== 0n;
    if (!p && !i) continue;
    const flags = `${effective ? 'e' : ''}${i ? 'i' : ''}${p ? 'p' : ''}`;
    const name = `cap_${CAPS[c] ?? c}`;
    groups.set(flags, [...(groups.get(flags) ?? []), name]);
  }
  const text = [...groups].map(([flags, names]) => `${names.join(',')}=${flags}`).join(' ');
  const rootid = (magic >>> 24) === 3 && v.length >= 24 ? v.readUInt32LE(20) : 0;
  return rootid ? `${text}[rootid=${rootid}]` : text || '=';
}

function render(tree) {
  const lines = ['# type mode uid:gid size sha256 capabilities path'];
  for (const path of [...tree.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const e = tree.get(path);
    const attrs = [];
    for (const [name, value] of [...e.xattrs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      attrs.push(name === 'security.capability' ? capabilities(value) : `${name}=${value.toString('hex')}`);
    }
    const size = e.type === 'f' || e.type === 'h' ? String(e.size) : '-';
    const link = e.link === undefined ? '' : ` -> ${e.link}`;
    lines.push(`${e.type} ${e.mode.toString(8).padStart(4, '0')} ${e.uid}:${e.gid} ${size} ${e.sha256 ?? '-'} ${attrs.join(',') || '-'} ${path}${link}`);
  }
  return `${lines.join('\n')}\n`;
}

async function main(argv) {
  let engine = 'podman';
  let archive;
  let image;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--engine') engine = argv[++i] ?? fail('--engine needs podman or docker');
    else if (a === '--archive') archive = argv[++i] ?? fail('--archive needs a file');
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: image-files.mjs [--engine podman|docker] IMAGE | --archive FILE.tar\n');
      return;
    } else if (a.startsWith('-')) fail(`unknown flag ${a} (usage: image-files.mjs [--engine podman|docker] IMAGE | --archive FILE.tar)`);
    else if (image === undefined) image = a;
    else fail(`one image at a time (got ${image} and ${a})`);
  }
  if (!['podman', 'docker'].includes(engine)) fail(`--engine ${engine}: expected podman or docker`);
  if ((archive === undefined) === (image === undefined)) fail('give an IMAGE or --archive FILE.tar (usage: image-files.mjs [--engine podman|docker] IMAGE | --archive FILE.tar)');
  let tmp;
  try {
    if (image !== undefined) {
      tmp = mkdtempSync(join(tmpdir(), 'image-files-'));
      archive = join(tmp, 'image.tar');
      const saved = spawnSync(engine, ['save', '-o', archive, image], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
      if (saved.error) fail(`cannot run ${engine}: ${saved.error.message}`);
      if (saved.status !== 0) fail(`${engine} save ${image} failed: ${saved.stderr.trim()}`);
    }
    if (!statSync(archive, { throwIfNoEntry: false })?.isFile()) fail(`--archive ${archive}: expected a file (a saved image: podman save -o FILE IMAGE)`);
    const members = indexArchive(archive);
    const tree = await applyLayers(archive, layersOf(archive, members));
    process.stdout.write(render(tree));
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2)).catch((err) => fail(err.message));
