// `stemcell export <image-id> <out.raw>`: restores a local image to a raw disk file (bootable under qemu), as
// launching it would: its blocks are decrypted with the customer key. For another account than the owner that is
// as its Auto Scaling service-linked role, which needs the grant infra/member.yml creates in every member.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createLocalEbs } from '#local/ebs.ts';
import { autoScalingRoleArn } from '#local/key-policy.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { ebsStateDir } from '#local/volumes.ts';
import { CliError } from '../errors.ts';

/** The regions of the data folder whose registry holds `imageId`. */
function regionsHolding(dataDir: string, imageId: string): string[] {
  const regionsDir = join(dataDir, 'regions');
  if (!existsSync(regionsDir)) return [];
  return readdirSync(regionsDir).filter((region) =>
    existsSync(join(ebsStateDir(dataDir, region), 'images', `${imageId}.json`)),
  );
}

export function register(program: Command): void {
  program
    .command('export')
    .description(
      'Restore a local image to a raw disk file (boot it with qemu-system-x86_64 -drive file=…,format=raw).',
    )
    .argument('<image-id>', 'image id (ami-…) from a local run')
    .argument('<out.raw>', 'raw disk image to write')
    .option('--data <dir>', 'local data folder', '.stemcell')
    .option('--region <region>', 'region of the image (found in the data folder when omitted)')
    .option(
      '--account <id>',
      "account that launches the image, through its Auto Scaling role's key grant (default: the image's owner)",
    )
    .action(
      async (imageId: string, out: string, opts: { data: string; region?: string; account?: string }) => {
        if (!/^ami-[0-9a-f]{17}$/.test(imageId))
          throw new CliError(`export: ${imageId} is not an image id (ami-…)`, 2);
        const dataDir = resolve(opts.data);
        let region = opts.region;
        if (!region) {
          const found = regionsHolding(dataDir, imageId);
          if (found.length === 0) throw new CliError(`export: image ${imageId} not found in ${dataDir}`, 1);
          if (found.length > 1)
            throw new CliError(
              `export: image ${imageId} is in several regions (${found.join(', ')}); pass --region`,
              2,
            );
          region = found[0] as string;
        }
        const dir = ebsStateDir(dataDir, region);
        const sink = { emit: () => {} };
        // The owner is only needed to name the stand-ins; decrypt rights come from the key's own record.
        const owner = '000000000000';
        const keys = new LocalKeyService(join(dataDir, 'kms'), { accountId: owner, region });
        const { images } = createLocalEbs({
          dir,
          region,
          accountId: owner,
          keys,
          events: sink,
          backend: 'block',
        });
        const image = await images.get(imageId);
        if (!image)
          throw new CliError(`export: image ${imageId} not found in region ${region} of ${dataDir}`, 1);
        const caller = opts.account ?? images.ownerOf(imageId);
        const principal = caller === images.ownerOf(imageId) ? caller : autoScalingRoleArn(caller);
        try {
          const started = performance.now();
          const restored = await images.restore(imageId, resolve(out), principal);
          process.stderr.write(
            `exported ${imageId} (${image.name}, ${image.bootMode}) to ${out}: ` +
              `${(restored.bytes / 2 ** 30).toFixed(2)} GiB ${restored.format === 'disk' ? 'raw disk' : 'tar archive'} ` +
              `in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
          );
        } catch (err) {
          if (err instanceof Error && err.name === 'AccessDeniedException')
            throw new CliError(`export: account ${caller} may not use the image's key: ${err.message}`, 1, {
              cause: err,
            });
          throw err;
        }
      },
    );
}
