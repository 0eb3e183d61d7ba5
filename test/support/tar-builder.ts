// A raw tar writer for tests: every header byte can be set by hand, so hostile archives (bad checksums,
// base-256 sizes, NUL bytes in PAX paths, missing end-of-archive…) are built exactly as described.

export type Typeflag =
  | '0'
  | '1'
  | '2'
  | '3'
  | '4'
  | '5'
  | '6'
  | '7'
  | 'x'
  | 'g'
  | 'L'
  | 'K'
  | 'S'
  | '\0'
  | string;

export interface HeaderFields {
  name: string;
  typeflag?: Typeflag;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** 'ustar' writes POSIX magic "ustar\0" "00"; 'gnu' writes "ustar  \0". */
  format?: 'ustar' | 'gnu';
  prefix?: string;
  /** Replaces the 12-byte size field verbatim (base-256, garbage…). */
  rawSize?: Buffer;
  /** Replaces the 12-byte mtime field verbatim (base-256 for times before 1970). */
  rawMtime?: Buffer;
  /** Written verbatim into the 100-byte name field (bytes that are not UTF-8). */
  rawName?: Buffer;
  /** Adds this to the correct checksum (0 = correct). */
  checksumDelta?: number;
}

const enc = new TextEncoder();

function putString(block: Buffer, offset: number, length: number, value: string | Buffer): void {
  const bytes = typeof value === 'string' ? Buffer.from(enc.encode(value)) : value;
  if (bytes.length > length)
    throw new Error(`tar-builder: ${JSON.stringify(value)} does not fit ${length} bytes`);
  bytes.copy(block, offset);
}

function putOctal(block: Buffer, offset: number, length: number, value: number): void {
  const text = value.toString(8).padStart(length - 1, '0');
  if (text.length > length - 1)
    throw new Error(`tar-builder: ${value} does not fit an octal field of ${length}`);
  putString(block, offset, length, `${text}\0`);
}

/** GNU base-256: 0x80 then big-endian two's complement (negative values start with 0xff). */
export function base256(value: bigint, length = 12): Buffer {
  const out = Buffer.alloc(length);
  let v = value < 0n ? (1n << BigInt(8 * length - 1)) + value : value;
  for (let i = length - 1; i >= 1; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] = value < 0n ? 0xff : 0x80;
  return out;
}

export function header(f: HeaderFields): Buffer {
  const block = Buffer.alloc(512);
  putString(block, 0, 100, f.rawName ?? f.name);
  putOctal(block, 100, 8, f.mode ?? 0o644);
  putOctal(block, 108, 8, f.uid ?? 0);
  putOctal(block, 116, 8, f.gid ?? 0);
  if (f.rawSize) f.rawSize.copy(block, 124, 0, 12);
  else putOctal(block, 124, 12, f.size ?? 0);
  if (f.rawMtime) f.rawMtime.copy(block, 136, 0, 12);
  else putOctal(block, 136, 12, f.mtime ?? 1_700_000_000);
  block.write(f.typeflag ?? '0', 156, 'latin1');
  putString(block, 157, 100, f.linkname ?? '');
  if ((f.format ?? 'ustar') === 'ustar') {
    block.write('ustar\u000000', 257, 'latin1');
  } else {
    block.write('ustar  \u0000', 257, 'latin1');
  }
  putString(block, 265, 32, 'root');
  putString(block, 297, 32, 'root');
  putOctal(block, 329, 8, f.devmajor ?? 0);
  putOctal(block, 337, 8, f.devminor ?? 0);
  if (f.prefix) putString(block, 345, 155, f.prefix);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  sum += f.checksumDelta ?? 0;
  putString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

function pad(body: Buffer): Buffer {
  const rest = body.length % 512;
  return rest === 0 ? body : Buffer.concat([body, Buffer.alloc(512 - rest)]);
}

/** PAX records "<len> key=value\n", with the self-referential length computed. */
export function paxBody(records: Array<[string, string | Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const payload = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    let len = payload.length + 1;
    while (String(len).length + payload.length !== len) len = String(len).length + payload.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), payload]));
  }
  return Buffer.concat(parts);
}

export interface EntryOpts {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** Written as SCHILY.xattr.* in a PAX header before the entry. */
  xattrs?: Record<string, string | Buffer>;
  /** Extra PAX records. */
  pax?: Array<[string, string | Buffer]>;
  format?: 'ustar' | 'gnu';
}

export class TarBuilder {
  private readonly parts: Buffer[] = [];

  raw(bytes: Buffer): this {
    this.parts.push(bytes);
    return this;
  }

  header(fields: HeaderFields, body?: Buffer): this {
    this.parts.push(header(fields));
    if (body?.length) this.parts.push(pad(body));
    return this;
  }

  paxHeader(
    records: Array<[string, string | Buffer]>,
    typeflag: 'x' | 'g' = 'x',
    name = 'PaxHeaders/x',
  ): this {
    const body = paxBody(records);
    return this.header({ name, typeflag, size: body.length }, body);
  }

  gnuLongName(name: string | Buffer, typeflag: 'L' | 'K' = 'L'): this {
    const body = Buffer.concat([Buffer.from(name), Buffer.alloc(1)]);
    return this.header({ name: '././@LongLink', typeflag, size: body.length, format: 'gnu' }, body);
  }

  private meta(o: EntryOpts | undefined): void {
    const records: Array<[string, string | Buffer]> = [...(o?.pax ?? [])];
    for (const [name, value] of Object.entries(o?.xattrs ?? {}))
      records.push([`SCHILY.xattr.${name}`, value]);
    if (records.length) this.paxHeader(records);
  }

  private common(o: EntryOpts | undefined) {
    return { mode: o?.mode, uid: o?.uid, gid: o?.gid, mtime: o?.mtime, format: o?.format };
  }

  file(name: string, content: string | Buffer, o?: EntryOpts): this {
    this.meta(o);
    const body = Buffer.from(content);
    return this.header({ name, typeflag: '0', size: body.length, ...this.common(o) }, body);
  }

  dir(name: string, o?: EntryOpts): this {
    this.meta(o);
    return this.header({ name, typeflag: '5', ...this.common({ mode: 0o755, ...o }) });
  }

  symlink(name: string, target: string, o?: EntryOpts): this {
    this.meta(o);
    return this.header({ name, typeflag: '2', linkname: target, ...this.common({ mode: 0o777, ...o }) });
  }

  hardlink(name: string, target: string, o?: EntryOpts): this {
    this.meta(o);
    return this.header({ name, typeflag: '1', linkname: target, ...this.common(o) });
  }

  device(name: string, kind: 'char' | 'block', major: number, minor: number, o?: EntryOpts): this {
    this.meta(o);
    const typeflag = kind === 'char' ? '3' : '4';
    return this.header({
      name,
      typeflag,
      devmajor: major,
      devminor: minor,
      ...this.common({ mode: 0o600, ...o }),
    });
  }

  fifo(name: string, o?: EntryOpts): this {
    this.meta(o);
    return this.header({ name, typeflag: '6', ...this.common(o) });
  }

  /** The archive so far, closed by `zeroBlocks` zero blocks (2 is a proper end-of-archive). */
  build(zeroBlocks = 2): Buffer {
    return Buffer.concat([...this.parts, Buffer.alloc(512 * zeroBlocks)]);
  }
}
