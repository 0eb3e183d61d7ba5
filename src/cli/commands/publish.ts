// `stemcell publish`: upload a tarball to the local bucket; a running `stemcell dev` picks it up.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { objectKey, parseObjectKey } from '#core/model/naming.ts';
import { LocalObjectStore } from '#local/object-store.ts';
import type { StoredObject } from '#ports';
import { CliError } from '../errors.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';

interface PublishOptions extends LocalOptions {
  stream: string;
  revision?: string;
}

export function register(program: Command): void {
  localOptions(
    program
      .command('publish <tarball>')
      .description('upload a root-filesystem tarball as the next revision of a stream (local bucket)')
      .requiredOption('--stream <name>', 'the image stream, e.g. web-base')
      .option('--revision <revision>', 'revision name (default: the UTC time, e.g. 2026.11.21-093000)'),
  ).action(async (tarball: string, options: PublishOptions) => {
    const config = await resolveConfig(options);
    if (!config.streams[options.stream]) {
      throw new CliError(
        `--stream ${options.stream}: not a stream of the configuration (${Object.keys(config.streams).join(', ')})`,
        2,
      );
    }
    const size = await stat(tarball).then(
      (s) => s.size,
      () => {
        throw new CliError(`${tarball}: cannot read the tarball`, 2);
      },
    );
    const extension = /\.tar(\.gz|\.zst|\.xz)?$/.exec(basename(tarball))?.[0] ?? '.tar';
    const revision =
      options.revision ??
      new Date().toISOString().slice(0, 19).replace(/-/g, '.').replace('T', '-').replace(/:/g, '');
    const key = objectKey(options.stream, revision, extension);
    try {
      parseObjectKey(key);
    } catch (err) {
      throw new CliError(`--revision ${revision}: ${(err as Error).message}`, 2, { cause: err });
    }
    const hash = createHash('sha256');
    await pipeline(createReadStream(tarball), hash);
    const sha256 = hash.digest('hex');
    const store = new LocalObjectStore(join(options.data, 'objects'), {
      bucket: config.bucket,
      accountId: config.local?.managementAccountId ?? '000000000000',
      region: config.homeRegion,
    });
    // A published revision is never overwritten: same content is a no-op, other content is refused.
    const existing = await publishedAs(store, options.stream, revision);
    if (existing) {
      const existingSha = existing.metadata.sha256;
      if (existingSha === sha256) {
        process.stdout.write(
          `already published: s3://${existing.bucket}/${existing.key} holds this tarball (sha256 ${sha256})\n`,
        );
        return;
      }
      throw new CliError(
        `revision ${revision} of stream ${options.stream} is already published as ${existing.key} with sha256 ` +
          `${existingSha ?? `unknown (etag ${existing.etag})`}; ${tarball} has sha256 ${sha256}: ` +
          'publish it as a new revision (--revision)',
        2,
      );
    }
    const stored = await store.put(key, createReadStream(tarball), { sha256 });
    process.stdout.write(
      `published s3://${stored.bucket}/${stored.key} (${size} bytes, sha256 ${sha256}); ` +
        `\`stemcell dev --data ${options.data}\` builds it, \`stemcell status ${options.stream}\` follows it\n`,
    );
  });
}

/** The object a revision was published as, whatever its compression suffix (ingest keys releases by revision). */
async function publishedAs(
  store: LocalObjectStore,
  stream: string,
  revision: string,
): Promise<StoredObject | undefined> {
  const prefix = objectKey(stream, revision, '.tar');
  return (await store.list(prefix)).find((o) => {
    try {
      const parsed = parseObjectKey(o.key);
      return parsed.stream === stream && parsed.revision === revision;
    } catch {
      return false;
    }
  });
}
