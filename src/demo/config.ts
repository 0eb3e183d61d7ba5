// The demo's organization: 2 streams, 2 regions, 6 accounts in 2 OUs, a launch template per account, region and
// stream it subscribes to, each with an Auto Scaling group tagged for instance refresh. web-base rolls out in two
// waves with bake times of seconds: the development OU is the canary, then everything else.

import { parseConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';

export const DEMO_REGIONS = ['eu-west-1', 'us-east-1'] as const;
const OU_PROD = 'ou-prod-11111111';
const OU_DEV = 'ou-devx-22222222';

export function demoConfig(): StemcellConfig {
  const accounts = Array.from({ length: 6 }, (_, i) => ({
    id: String(100000000001 + i),
    name: `${i < 3 ? 'prod' : 'dev'}-${i + 1}`,
    ou: i < 3 ? OU_PROD : OU_DEV,
  }));
  const streams = {
    // Bootable: gets a partition table, GRUB and a kernel command line.
    'web-base': {
      regions: [...DEMO_REGIONS],
      bootMode: 'legacy-bios',
      volumeSizeGiB: 1,
      keep: 3,
      subscribers: { scope: 'organization', ssmParameter: '/stemcell/{stream}/{region}/image-id' },
      // Seconds, not minutes: long enough for the canary's reports to arrive on a loaded machine.
      rollout: {
        waves: [
          { name: 'canary', ous: [OU_DEV], bakeMinutes: 0.1 },
          { name: 'rest', bakeMinutes: 0.05 },
        ],
      },
    },
    // A data-only stream, shared with the production OU alone.
    'batch-base': {
      regions: [...DEMO_REGIONS],
      bootMode: 'none',
      volumeSizeGiB: 1,
      keep: 2,
      sharing: { ous: [OU_PROD] },
      subscribers: { scope: { ous: [OU_PROD] } },
    },
  };
  const inScope = (stream: keyof typeof streams, ou: string) => stream === 'web-base' || ou === OU_PROD;
  const launchTemplates = accounts.flatMap((account) =>
    DEMO_REGIONS.flatMap((region) =>
      (Object.keys(streams) as (keyof typeof streams)[])
        .filter((stream) => inScope(stream, account.ou))
        .map((stream) => ({
          account: account.id,
          region,
          stream,
          name: `${stream}-app`,
          autoScalingGroup: `${stream}-asg`,
          refresh: true,
        })),
    ),
  );
  return parseConfig(
    {
      homeRegion: 'eu-west-1',
      kmsKeyId: 'alias/stemcell',
      bucket: 'stemcell-demo-tarballs',
      streams,
      local: {
        organizationId: 'o-demo000001',
        managementAccountId: '100000000000',
        ous: [
          { id: OU_PROD, name: 'production' },
          { id: OU_DEV, name: 'development' },
        ],
        accounts,
        launchTemplates,
      },
    },
    'demo configuration',
  );
}

/** Accounts whose launch templates follow a stream (the stream's subscriber scope). */
export function accountsInScope(config: StemcellConfig, stream: string): string[] {
  const local = config.local;
  const scope = config.streams[stream]?.subscribers.scope;
  if (!local || !scope) return [];
  const accounts = local.accounts.filter((a) => scope === 'organization' || scope.ous.includes(a.ou));
  return accounts.map((a) => a.id);
}
