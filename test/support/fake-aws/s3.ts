// Stateful fake of the S3 calls S3ObjectStore makes (PutObject, HeadObject, GetObject with IfMatch).
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, md5Etag } from './common.ts';

interface FakeObject {
  body: Buffer;
  etag: string;
  versionId: string;
  metadata: Record<string, string>;
}

async function toBuffer(body: unknown): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (typeof body === 'string') return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export class FakeS3 {
  readonly objects = new Map<string, FakeObject>();
  #version = 0;

  client(): S3Client {
    const client = new S3Client({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(PutObjectCommand).callsFake(async (input) => {
      const body = await toBuffer(input.Body);
      const obj: FakeObject = {
        body,
        etag: md5Etag(body),
        versionId: `v${++this.#version}`,
        metadata: input.Metadata ?? {},
      };
      this.objects.set(`${input.Bucket}/${input.Key}`, obj);
      return { ETag: obj.etag, VersionId: obj.versionId };
    });
    mock.on(HeadObjectCommand).callsFake((input) => {
      const obj = this.objects.get(`${input.Bucket}/${input.Key}`);
      if (!obj) throw awsError('NotFound');
      return {
        ETag: obj.etag,
        ContentLength: obj.body.length,
        VersionId: obj.versionId,
        Metadata: obj.metadata,
      };
    });
    mock.on(GetObjectCommand).callsFake((input) => {
      const obj = this.objects.get(`${input.Bucket}/${input.Key}`);
      if (!obj) throw awsError('NoSuchKey');
      if (input.IfMatch && input.IfMatch !== obj.etag) throw awsError('PreconditionFailed');
      return {
        ETag: obj.etag,
        ContentLength: obj.body.length,
        VersionId: obj.versionId,
        Metadata: obj.metadata,
        // A stream with the SDK's helpers, as GetObject's Body is.
        Body: Object.assign(Readable.from([obj.body]), {
          transformToString: async (encoding?: BufferEncoding) => obj.body.toString(encoding ?? 'utf8'),
        }),
      };
    });
    return client;
  }
}
