// ObjectStore on S3. The bucket has EventBridge notifications on, so a put emits "Object Created" by itself.

import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { DependencyError } from '#errors';
import type { ObjectStore, StoredObject } from '#ports';
import { isError } from './retry.ts';

export class ObjectChangedError extends DependencyError {
  readonly key: string;
  constructor(bucket: string, key: string, ifMatch: string, options?: { cause?: unknown }) {
    super(
      `s3://${bucket}/${key} no longer has etag ${ifMatch}: it was overwritten since it was announced`,
      options,
    );
    this.name = 'ObjectChangedError';
    this.key = key;
  }
}

export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  readonly #s3: S3Client;

  constructor(options: { bucket: string; client?: S3Client; clientConfig?: S3ClientConfig }) {
    this.bucket = options.bucket;
    this.#s3 = options.client ?? new S3Client({ retryMode: 'adaptive', ...options.clientConfig });
  }

  async put(
    key: string,
    body: Readable | Buffer,
    metadata: Record<string, string> = {},
  ): Promise<StoredObject> {
    let size = 0;
    let out: { ETag?: string | undefined; VersionId?: string | undefined };
    if (Buffer.isBuffer(body)) {
      size = body.length;
      out = await this.#s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, Metadata: metadata }),
      );
    } else {
      // A stream of unknown length: multipart upload, counting bytes as they pass.
      const counted = body.map((chunk: Buffer) => {
        size += chunk.length;
        return chunk;
      });
      const upload = new Upload({
        client: this.#s3,
        params: { Bucket: this.bucket, Key: key, Body: counted, Metadata: metadata },
      });
      out = await upload.done();
    }
    if (!out.ETag) throw new Error(`PutObject s3://${this.bucket}/${key} returned no ETag`);
    const stored: StoredObject = { bucket: this.bucket, key, etag: out.ETag, size, metadata };
    if (out.VersionId) stored.versionId = out.VersionId;
    return stored;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.#s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return this.#stored(key, out);
    } catch (err) {
      if (isError(err, 'NotFound', 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  async get(
    key: string,
    ifMatch?: string,
    versionId?: string,
  ): Promise<{ object: StoredObject; body: Readable }> {
    try {
      const out = await this.#s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, IfMatch: ifMatch, VersionId: versionId }),
      );
      if (!(out.Body instanceof Readable))
        throw new Error(`GetObject s3://${this.bucket}/${key}: no body stream`);
      return { object: this.#stored(key, out), body: out.Body };
    } catch (err) {
      if (isError(err, 'PreconditionFailed') && ifMatch)
        throw new ObjectChangedError(this.bucket, key, ifMatch, { cause: err });
      if (isError(err, 'NoSuchKey', 'NotFound'))
        throw new Error(`s3://${this.bucket}/${key} does not exist`, { cause: err });
      throw err;
    }
  }

  #stored(
    key: string,
    out: {
      ETag?: string | undefined;
      ContentLength?: number | undefined;
      VersionId?: string | undefined;
      Metadata?: Record<string, string> | undefined;
    },
  ): StoredObject {
    const stored: StoredObject = {
      bucket: this.bucket,
      key,
      etag: out.ETag ?? '',
      size: out.ContentLength ?? 0,
      metadata: out.Metadata ?? {},
    };
    if (out.VersionId) stored.versionId = out.VersionId;
    return stored;
  }
}
