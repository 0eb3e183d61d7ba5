// The local S3 bucket: bodies under <root>/objects/<bucket>/<key>, a JSON sidecar per object under
// <root>/object-meta/<bucket>/<key>.json (etag, size, version id, metadata). A put emits the EventBridge S3
// "Object Created" event, exactly as a bucket with EventBridge notifications does. Etags are the MD5 hex of the
// body WITHOUT quotes, as the EventBridge event carries them (the S3 ETag header quotes them; `get` accepts both).
// A process without a bus (`stemcell publish`) stores objects without emitting; a long-running process
// (`stemcell dev`) notices them with scanForNew()/watch() and emits once per (key, etag).
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Clock, ObjectStore, StoredObject } from '#ports';
import { awsTime, systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { fsyncDir, readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';
import { type ServiceEventSink, serviceEvent } from './service-events.ts';

export interface LocalObjectStoreOptions {
  bucket: string;
  /** The bucket owner's account: `account` and `requester` of the events. */
  accountId: string;
  region: string;
  /** Where "Object Created" goes; without one, puts are silent until another process's scanForNew(). */
  sink?: ServiceEventSink;
  clock?: Clock;
  /** A versioned bucket gives each put a version id (and the event carries it). Default true. */
  versioning?: boolean;
}

interface Sidecar {
  key: string;
  etag: string;
  size: number;
  versionId?: string;
  metadata: Record<string, string>;
  lastModified: string;
  sequencer: string;
}

const META_SUFFIX = '.json';

export class LocalObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly accountId: string;
  readonly region: string;
  readonly #objectsDir: string;
  readonly #metaDir: string;
  readonly #notifiedPath: string;
  readonly #sink: ServiceEventSink | undefined;
  readonly #clock: Clock;
  readonly #versioning: boolean;
  readonly #root: string;
  #sequence = 0;

  constructor(root: string, options: LocalObjectStoreOptions) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new LocalServiceError(
        'InvalidBucketName',
        `bucket name ${JSON.stringify(options.bucket)} is not valid`,
      );
    }
    this.bucket = options.bucket;
    this.#root = root;
    this.accountId = options.accountId;
    this.region = options.region;
    this.#objectsDir = join(root, 'objects', this.bucket);
    this.#metaDir = join(root, 'object-meta', this.bucket);
    this.#notifiedPath = join(root, 'object-meta', `${this.bucket}.notified.json`);
    this.#sink = options.sink;
    this.#clock = options.clock ?? systemClock;
    this.#versioning = options.versioning ?? true;
  }

  async put(
    key: string,
    body: Readable | Buffer,
    metadata: Record<string, string> = {},
  ): Promise<StoredObject> {
    assertKey(key);
    const bodyPath = join(this.#objectsDir, key);
    try {
      mkdirSync(dirname(bodyPath), { recursive: true });
    } catch (err) {
      // A directory tree cannot hold both "a" and "a/b" the way S3 can.
      throw new LocalServiceError(
        'InvalidObjectKey',
        `object key ${JSON.stringify(key)} collides with an existing object on a path prefix (${(err as Error).message})`,
      );
    }
    const tmp = `${bodyPath}.${process.pid}.${randomBytes(4).toString('hex')}.upload`;
    const md5 = createHash('md5');
    let size = 0;
    try {
      await pipeline(
        Buffer.isBuffer(body) ? Readable.from([body]) : body,
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            md5.update(chunk);
            size += chunk.length;
            done(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      // Durable before the PUT returns, as S3's is: the body's data, then (below) the rename into its folder.
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // A versioned bucket keeps what it had: the body and sidecar of the current version move aside first.
      const previous = this.#versioning
        ? readJson<Sidecar | undefined>(this.#metaPath(key), undefined)
        : undefined;
      if (previous?.versionId) this.#archive(previous);
      renameSync(tmp, bodyPath);
      fsyncDir(dirname(bodyPath));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const now = this.#clock.now();
    const sidecar: Sidecar = {
      key,
      etag: md5.digest('hex'),
      size,
      metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k.toLowerCase(), v])),
      lastModified: now.toISOString(),
      sequencer: this.#nextSequencer(now),
    };
    // S3 version ids are opaque 32-character strings.
    if (this.#versioning) sidecar.versionId = randomBytes(24).toString('base64url');
    writeJsonAtomic(this.#metaPath(key), sidecar);
    const stored = this.#toStored(sidecar);
    if (this.#sink) {
      // S3 emits on every PUT, even of identical content; the ledger only stops scanForNew() repeating it.
      this.#sink.emit(this.#objectCreated(sidecar));
      this.#recordNotified(key, sidecar.etag);
    }
    return stored;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    assertKey(key);
    const sidecar = readJson<Sidecar | undefined>(this.#metaPath(key), undefined);
    return sidecar && this.#toStored(sidecar);
  }

  async get(
    key: string,
    ifMatch?: string,
    versionId?: string,
  ): Promise<{ object: StoredObject; body: Readable }> {
    const current = await this.head(key);
    if (versionId && current?.versionId !== versionId) return this.#getVersion(key, versionId, ifMatch);
    const object = current;
    if (!object) {
      throw new LocalServiceError(
        'NoSuchKey',
        `s3://${this.bucket}/${key}: The specified key does not exist.`,
        404,
      );
    }
    if (ifMatch !== undefined && unquote(ifMatch) !== object.etag) {
      throw new LocalServiceError(
        'PreconditionFailed',
        `s3://${this.bucket}/${key}: etag is ${object.etag}, not ${unquote(ifMatch)} (the object changed)`,
        412,
      );
    }
    return { object, body: createReadStream(join(this.#objectsDir, key)) };
  }

  // ---------------------------------------------------------------- local-only

  /** Every version of `key`, the current one last (ListObjectVersions). */
  versions(key: string): StoredObject[] {
    assertKey(key);
    const older = readJsonDir<Sidecar>(this.#versionsDir(key)).sort((a, b) =>
      a.sequencer < b.sequencer ? -1 : 1,
    );
    const current = readJson<Sidecar | undefined>(this.#metaPath(key), undefined);
    return [...older, ...(current ? [current] : [])].map((s) => this.#toStored(s));
  }

  /** Every object whose key starts with `prefix`, in key order (ListObjectsV2). */
  async list(prefix = ''): Promise<StoredObject[]> {
    return this.#sidecars()
      .filter((s) => s.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((s) => this.#toStored(s));
  }

  /**
   * Emits "Object Created" for each object whose (key, etag) has not been announced yet: objects another
   * process put. Returns what it announced. Needs a sink.
   */
  async scanForNew(): Promise<StoredObject[]> {
    const sink = this.#sink;
    if (!sink) throw new Error(`object store ${this.bucket}: scanForNew() needs a sink to emit to`);
    const notified = readJson<Record<string, string>>(this.#notifiedPath, {});
    const fresh = this.#sidecars()
      .filter((s) => notified[s.key] !== s.etag)
      .sort((a, b) => (a.sequencer < b.sequencer ? -1 : 1));
    for (const s of fresh) {
      sink.emit(this.#objectCreated(s));
      notified[s.key] = s.etag;
    }
    if (fresh.length > 0) writeJsonAtomic(this.#notifiedPath, notified);
    return fresh.map((s) => this.#toStored(s));
  }

  /** Polls scanForNew() every `intervalMs` until stop(); errors go to `onError` (the watch keeps going). */
  watch(intervalMs = 250, onError: (err: unknown) => void = () => {}): { stop(): void } {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.scanForNew()
        .catch(onError)
        .finally(() => {
          running = false;
        });
    }, intervalMs);
    return { stop: () => clearInterval(timer) };
  }

  // ---------------------------------------------------------------- internals

  #versionsDir(key: string): string {
    return join(this.#root, 'object-versions', this.bucket, key);
  }

  /** Moves the current version of an object (body + sidecar) among its older versions. */
  #archive(current: Sidecar): void {
    const dir = this.#versionsDir(current.key);
    mkdirSync(dir, { recursive: true });
    const id = current.versionId as string;
    renameSync(join(this.#objectsDir, current.key), join(dir, id));
    writeJsonAtomic(join(dir, `${id}.json`), current); // fsyncs dir: the renamed body's entry too
  }

  #getVersion(key: string, versionId: string, ifMatch?: string): { object: StoredObject; body: Readable } {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(versionId))
      throw new LocalServiceError(
        'InvalidArgument',
        `version id ${JSON.stringify(versionId)} is not valid`,
        400,
      );
    const sidecar = readJson<Sidecar | undefined>(
      join(this.#versionsDir(key), `${versionId}.json`),
      undefined,
    );
    if (!sidecar)
      throw new LocalServiceError(
        'NoSuchVersion',
        `s3://${this.bucket}/${key}: version ${versionId} does not exist`,
        404,
      );
    if (ifMatch !== undefined && unquote(ifMatch) !== sidecar.etag)
      throw new LocalServiceError(
        'PreconditionFailed',
        `s3://${this.bucket}/${key} version ${versionId}: etag is ${sidecar.etag}, not ${unquote(ifMatch)}`,
        412,
      );
    return {
      object: this.#toStored(sidecar),
      body: createReadStream(join(this.#versionsDir(key), versionId)),
    };
  }

  #metaPath(key: string): string {
    return join(this.#metaDir, `${key}${META_SUFFIX}`);
  }

  #sidecars(): Sidecar[] {
    let entries: string[];
    try {
      entries = readdirSync(this.#metaDir, { recursive: true, encoding: 'utf8' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries
      .filter((e) => e.endsWith(META_SUFFIX))
      .map((e) => readJson<Sidecar | undefined>(join(this.#metaDir, e), undefined))
      .filter((s): s is Sidecar => s !== undefined);
  }

  #recordNotified(key: string, etag: string): void {
    const notified = readJson<Record<string, string>>(this.#notifiedPath, {});
    notified[key] = etag;
    writeJsonAtomic(this.#notifiedPath, notified);
  }

  #nextSequencer(now: Date): string {
    // Increasing hex, like S3's per-key sequencer: time first, then a counter for puts in the same millisecond.
    this.#sequence = (this.#sequence + 1) % 0x10000;
    return (now.getTime().toString(16) + this.#sequence.toString(16).padStart(4, '0'))
      .toUpperCase()
      .padStart(18, '0');
  }

  #toStored(s: Sidecar): StoredObject {
    const stored: StoredObject = {
      bucket: this.bucket,
      key: s.key,
      etag: s.etag,
      size: s.size,
      metadata: s.metadata,
    };
    if (s.versionId) stored.versionId = s.versionId;
    return stored;
  }

  #objectCreated(s: Sidecar) {
    const object: Record<string, unknown> = { key: s.key, size: s.size, etag: s.etag };
    if (s.versionId) object['version-id'] = s.versionId;
    object.sequencer = s.sequencer;
    return serviceEvent({
      'detail-type': 'Object Created',
      source: 'aws.s3',
      account: this.accountId,
      time: awsTime(new Date(s.lastModified)),
      region: this.region,
      resources: [`arn:aws:s3:::${this.bucket}`],
      detail: {
        version: '0',
        bucket: { name: this.bucket },
        object,
        'request-id': randomBytes(8).toString('hex').toUpperCase(),
        requester: this.accountId,
        'source-ip-address': '127.0.0.1',
        reason: 'PutObject',
      },
    });
  }
}

function assertKey(key: string): void {
  const bad =
    key.length === 0 ||
    Buffer.byteLength(key) > 1024 ||
    key.startsWith('/') ||
    key.endsWith('/') ||
    key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..') ||
    key.includes('\0');
  if (bad) {
    throw new LocalServiceError(
      'InvalidObjectKey',
      `object key ${JSON.stringify(key)} cannot be stored locally: use 1-1024 bytes of non-empty '/'-separated segments other than '.' and '..'`,
    );
  }
}

function unquote(etag: string): string {
  return etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}
