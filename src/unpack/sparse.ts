// GNU sparse files (`tar --sparse`): the archive stores only the data segments of a file, with a map of
// where they lie; the rest are holes. Four encodings, all read here:
//   - old GNU ('S' entries): up to 4 map entries in the header, more in 512-byte extension blocks;
//   - PAX 0.0: GNU.sparse.offset / GNU.sparse.numbytes record pairs, GNU.sparse.size the real size;
//   - PAX 0.1: one GNU.sparse.map record "offset,size,offset,size,...";
//   - PAX 1.0: the map at the start of the body (decimal numbers, one per line, padded to a block),
//     GNU.sparse.realsize the real size, GNU.sparse.name the real name.
// A map is refused unless its segments are in order, do not overlap, end within the real size and add up
// to exactly the bytes stored: a map that disagrees with the body is where readers would disagree.
import { decodeName } from './names.ts';
import { decodeUtf8, type PaxRecord } from './pax.ts';
import { BLOCK, numericField, type Reject } from './tar-fields.ts';

/** Where a sparse file's stored bytes go: segments in order, the rest of realSize is holes. */
export interface SparseMap {
  realSize: number;
  segments: Array<[offset: number, length: number]>;
}

/** ext4's largest file (4 KiB blocks): a real size beyond it is refused, not left for ftruncate to fail on. */
export const MAX_SPARSE_SIZE = 16 * 1024 ** 4;

export interface PaxSparse {
  version: '0.0' | '0.1' | '1.0';
  realSize: number;
  /** 0.0 and 0.1 carry the map in records; 1.0 in the body. */
  segments?: Array<[number, number]>;
  /** GNU.sparse.name, the real name (0.1 and 1.0 put a made-up one in the header). */
  name?: string;
}

function decimal(value: Buffer, what: string, reject: Reject): number {
  const text = decodeUtf8(value, what, reject);
  if (!/^[0-9]{1,16}$/.test(text)) reject(`invalid ${what} ${JSON.stringify(text)}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) reject(`${what} out of range`);
  return n;
}

/** The sparse description of an entry's GNU.sparse.* PAX records. */
export function paxSparse(records: PaxRecord[], reject: Reject): PaxSparse {
  const seen = new Map<string, Buffer>();
  const pairs: Array<[number, number]> = [];
  let pendingOffset: number | null = null;
  for (const [key, value] of records) {
    if (key === 'GNU.sparse.offset') {
      if (pendingOffset !== null) reject('GNU.sparse.offset without its GNU.sparse.numbytes');
      pendingOffset = decimal(value, key, reject);
      continue;
    }
    if (key === 'GNU.sparse.numbytes') {
      if (pendingOffset === null) reject('GNU.sparse.numbytes without its GNU.sparse.offset');
      pairs.push([pendingOffset, decimal(value, key, reject)]);
      pendingOffset = null;
      continue;
    }
    if (seen.has(key)) reject(`two ${key} records for one entry`);
    seen.set(key, value);
  }
  if (pendingOffset !== null) reject('GNU.sparse.offset without its GNU.sparse.numbytes');
  for (const key of seen.keys()) {
    if (
      ![
        'GNU.sparse.major',
        'GNU.sparse.minor',
        'GNU.sparse.size',
        'GNU.sparse.realsize',
        'GNU.sparse.numblocks',
        'GNU.sparse.map',
        'GNU.sparse.name',
      ].includes(key)
    ) {
      reject(`unsupported sparse record ${key}`);
    }
  }
  const get = (key: string) => seen.get(key);
  const name = get('GNU.sparse.name');
  const nameValue = () => {
    if (!name) return undefined;
    if (name.includes(0)) reject('GNU.sparse.name contains a NUL byte');
    return decodeName(name);
  };
  const major = get('GNU.sparse.major');
  if (major !== undefined) {
    const minor = get('GNU.sparse.minor');
    if (
      decimal(major, 'GNU.sparse.major', reject) !== 1 ||
      !minor ||
      decimal(minor, 'GNU.sparse.minor', reject) !== 0
    ) {
      reject('unsupported GNU sparse format version (only 0.0, 0.1 and 1.0 are read)');
    }
    if (pairs.length || get('GNU.sparse.map') || get('GNU.sparse.numblocks') || get('GNU.sparse.size')) {
      reject('GNU sparse 1.0 records mixed with 0.x map records');
    }
    const realsize = get('GNU.sparse.realsize');
    if (!realsize) reject('GNU sparse 1.0 entry without GNU.sparse.realsize');
    return { version: '1.0', realSize: decimal(realsize, 'GNU.sparse.realsize', reject), name: nameValue() };
  }
  if (get('GNU.sparse.minor') || get('GNU.sparse.realsize')) reject('GNU sparse records of no known version');
  const size = get('GNU.sparse.size');
  const numblocks = get('GNU.sparse.numblocks');
  if (!size || !numblocks) reject('GNU sparse entry without GNU.sparse.size and GNU.sparse.numblocks');
  const count = decimal(numblocks, 'GNU.sparse.numblocks', reject);
  const map = get('GNU.sparse.map');
  let version: '0.0' | '0.1' = '0.0';
  let segments = pairs;
  if (map !== undefined) {
    if (pairs.length) reject('GNU.sparse.map mixed with GNU.sparse.offset records');
    version = '0.1';
    const text = decodeUtf8(map, 'GNU.sparse.map', reject);
    const numbers = text === '' ? [] : text.split(',');
    if (numbers.length % 2 !== 0) reject('GNU.sparse.map has an odd count of numbers');
    segments = [];
    for (let i = 0; i < numbers.length; i += 2) {
      segments.push([
        decimal(Buffer.from(numbers[i]!), 'GNU.sparse.map offset', reject),
        decimal(Buffer.from(numbers[i + 1]!), 'GNU.sparse.map size', reject),
      ]);
    }
  }
  if (segments.length !== count) {
    reject(`GNU.sparse.numblocks says ${count} segments, the map has ${segments.length}`);
  }
  return { version, realSize: decimal(size, 'GNU.sparse.size', reject), segments, name: nameValue() };
}

/** How many 24-byte map entries an old GNU header and each extension block hold, and where. */
const OLD_GNU_IN_HEADER = { first: 386, count: 4, extendedFlag: 482 };
const OLD_GNU_IN_EXTENSION = { first: 0, count: 21, extendedFlag: 504 };

/** Whether an old GNU sparse header (or extension block) says another extension block follows. */
export function oldGnuExtended(block: Buffer, isExtension: boolean): boolean {
  return block[(isExtension ? OLD_GNU_IN_EXTENSION : OLD_GNU_IN_HEADER).extendedFlag] !== 0;
}

/** The map of an old GNU 'S' entry: its header and the extension blocks that followed it. */
export function oldGnuSparse(header: Buffer, extensions: Buffer[], reject: Reject): SparseMap {
  const segments: Array<[number, number]> = [];
  let ended = false;
  const read = (block: Buffer, where: typeof OLD_GNU_IN_HEADER) => {
    for (let i = 0; i < where.count; i++) {
      const at = where.first + i * 24;
      // An entry whose offset field starts with NUL ends the list (GNU tar's reading).
      if (block[at] === 0) {
        ended = true;
        continue;
      }
      if (ended) reject('old GNU sparse map continues after its end');
      segments.push([
        numericField(block, at, 12, 'sparse offset', reject),
        numericField(block, at + 12, 12, 'sparse size', reject),
      ]);
    }
  };
  read(header, OLD_GNU_IN_HEADER);
  for (const block of extensions) read(block, OLD_GNU_IN_EXTENSION);
  return { realSize: numericField(header, 483, 12, 'sparse real size', reject), segments };
}

/**
 * The map at the start of a PAX 1.0 sparse body: a count, then an offset and a size per segment, each a
 * decimal number ending in a newline, padded with NULs to a block. `bytes` is what is buffered of the body
 * (at most maxBytes); returns the map and the bytes it takes, or null when more bytes are needed.
 */
export function sparse1Map(
  bytes: Buffer,
  complete: boolean,
  maxBytes: number,
  reject: Reject,
): { segments: Array<[number, number]>; mapBytes: number } | null {
  let pos = 0;
  const next = (what: string): number | null => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl === -1) {
      if (bytes.length - pos > 20 || complete)
        reject(`GNU sparse 1.0 map: ${what} is malformed or cut short`);
      return null;
    }
    const text = bytes.subarray(pos, nl);
    pos = nl + 1;
    return decimal(text, `GNU sparse 1.0 map ${what}`, reject);
  };
  const count = next('count');
  if (count === null) return null;
  // Each segment takes at least four bytes of map: a bound before anything is allocated.
  if (count * 4 > maxBytes)
    reject(`GNU sparse 1.0 map of ${count} segments exceeds the extended-header limit`);
  const segments: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const offset = next('offset');
    if (offset === null) return null;
    const size = next('size');
    if (size === null) return null;
    segments.push([offset, size]);
  }
  const mapBytes = Math.ceil(pos / BLOCK) * BLOCK;
  if (mapBytes > bytes.length) {
    if (complete) reject('GNU sparse 1.0 map: its padding is cut short');
    return null;
  }
  for (let i = pos; i < mapBytes; i++) if (bytes[i] !== 0) reject('GNU sparse 1.0 map: padding is not zero');
  return { segments, mapBytes };
}

/** Segments in order, not overlapping, within the real size, adding up to exactly the stored bytes. */
export function checkSparse(map: SparseMap, storedBytes: number, reject: Reject): void {
  if (map.realSize > MAX_SPARSE_SIZE)
    reject(`sparse file of ${map.realSize} bytes exceeds ${MAX_SPARSE_SIZE}`);
  let end = 0;
  let data = 0;
  for (const [offset, length] of map.segments) {
    if (offset < end) reject('sparse map segments overlap or are out of order');
    end = offset + length;
    if (end > map.realSize) reject('sparse map segment ends past the real size');
    data += length;
  }
  if (data !== storedBytes) reject(`sparse map holds ${data} bytes of data, the entry stores ${storedBytes}`);
}
