// What the main thread asks of the file writer's thread, and what it answers: the messages between
// writer-client.ts and file-worker.ts. Plain data only (they cross threads by structured clone); body
// bytes travel as whole chunks of the decompressed stream, transferred, never copied.
import type { ManifestRecord } from './manifest.ts';
import type { SparseMap } from './sparse.ts';
import type { XattrList } from './tree-ops.ts';

/** One regular file of the archive: everything the writer needs to decide what to write, and write it. */
export interface FileJob {
  id: number;
  /** Relative to the root, as names.ts decodes it. */
  rel: string;
  /** Body bytes that will follow (a sparse file's stored data). */
  size: number;
  sparse: SparseMap | null;
  uid: number;
  gid: number;
  /** What chmod sets (the entry's mode), and what the file ends with once its access ACL is set. */
  mode: number;
  recMode: number;
  mtime: number;
  mtimeNsec: number;
  xattrs: XattrList | null;
  old: OldFile | null;
  /** The old state is the manifest's (content known by hash), not read from disk (content compared). */
  fromManifest: boolean;
  /**
   * The quick check (trustMtime) passed on size and mtime: if the inode still agrees with its stamp, the body
   * is not even hashed; if not, the file is compared with the disk.
   */
  quick: boolean;
  /** The old inode has other names: never patched in place. */
  shared: boolean;
  /**
   * The parent directory was made by this apply, without setgid: a new file there gets the writer's own
   * user and group and its creation mode less the umask, so chown and chmod are needed only if those differ.
   */
  freshParent: boolean;
}

/**
 * The file that was there: its manifest record (or one read from disk), trimmed to what the writer reads
 * (window digests only where a body is streamed), attributes as the manifest keeps them (base64).
 */
export interface OldFile {
  rec: ManifestRecord;
}

export interface FileResult {
  id: number;
  /** Content id (content.ts): sha256 hex, and the window digests (base64) of a file above one window. */
  h: string;
  b?: string[];
  /** A new inode was made (the parent directory changed). */
  created: boolean;
  /** Content was written (created or patched). */
  written: boolean;
  /** Owner, mode, mtime or xattrs alone changed. */
  metaChanged: boolean;
  bytesWritten: number;
  /** A directory found at the path (put there behind the manifest's back) was removed. */
  wiped: boolean;
  /** The inode as the writer left it (see InodeStamp); taken again if a helper request touches it later. */
  n?: InodeStamp;
}

/** Device node or FIFO, made by the writer's helper batch (fs-helper.ts). */
export interface NodeJob {
  rel: string;
  type: 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  major: number;
  minor: number;
  mtime: number;
  mtimeNsec: number;
}

/** The disk's word for a file at the end of an apply: inode number, mtime and ctime (ms, as Node reads them). */
export type InodeStamp = [ino: number, mtimeMs: number, ctimeMs: number];

export type WriterOp =
  | { k: 'file'; job: FileJob }
  /** A piece of the open file's body: bytes [o, o + n) of the message's buffer b. */
  | { k: 'data'; b: number; o: number; n: number }
  | { k: 'end' }
  /** `file`: the path is a regular file, whose inode stamp is taken again once the request has run. */
  | { k: 'xattrs'; rel: string; set: XattrList; remove: string[]; file?: boolean }
  | { k: 'node'; node: NodeJob }
  | { k: 'times'; rel: string; sec: number; nsec: number; file?: boolean }
  /** Run every queued helper request, then answer `settled`. */
  | { k: 'settle'; seq: number }
  /** lstat these files: their inode stamps (after a hardlink to them, say). */
  | { k: 'stat'; seq: number; rels: string[] };

export interface WriterMessage {
  ops: WriterOp[];
  buffers: ArrayBuffer[];
}

export interface WriterReply {
  results: FileResult[];
  /** Bytes of transferred buffers the writer is done with. */
  freed: number;
  settled?: number;
  /** Files whose inode a helper request changed, stamped again (path, stamp). */
  restamps?: Array<[string, InodeStamp | null]>;
  error?: { message: string; code?: string };
}

export interface WriterInit {
  root: string;
  umask: number;
  /** Int32Array slots: [0] replies posted, [1] ops done (a heartbeat while a long batch runs). */
  signal: SharedArrayBuffer;
}
