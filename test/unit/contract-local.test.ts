// The shared port contracts (test/contract/) over the local adapters (src/local/), each on a fresh data
// directory. Volumes use the directory backend here: fast, and the same contract; the block backend (loop
// devices) is exercised by the integration tests.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { autoScalingRoleArn } from '#core/images/launchable.ts';
import { createLocalEbs } from '#local/ebs.ts';
import { LocalEventBus } from '#local/event-bus.ts';
import { LocalFifoQueue } from '#local/fifo-queue.ts';
import { LocalImages } from '#local/images.ts';
import { AUTO_SCALING_GRANT_OPERATIONS, stemcellKeyPolicy } from '#local/key-policy.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { LocalLaunchModel } from '#local/launch-model.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';
import { LocalObjectStore } from '#local/object-store.ts';
import { LocalOrganizationDirectory } from '#local/organization.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import { LocalSnapshots } from '#local/snapshots.ts';
import { ebsStateDir, LocalVolumes } from '#local/volumes.ts';
import {
  busRulesContract,
  CONTRACT_SOURCE,
  eventPublisherContract,
} from '#test/contract/event-bus.contract.ts';
import { fifoQueueContract } from '#test/contract/fifo-queue.contract.ts';
import { keyServiceContract } from '#test/contract/key-service.contract.ts';
import { launchModelContract } from '#test/contract/launch-model.contract.ts';
import { memberAccountsContract } from '#test/contract/member-accounts.contract.ts';
import { objectStoreContract } from '#test/contract/object-store.contract.ts';
import { organizationContract } from '#test/contract/organization.contract.ts';
import { releaseStoreContract } from '#test/contract/release-store.contract.ts';
import { volumesContract } from '#test/contract/volumes.contract.ts';

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';

async function dataDir(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'stemcell-contract-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

objectStoreContract('local', async () => {
  const { root, cleanup } = await dataDir();
  return {
    store: new LocalObjectStore(root, { bucket: 'stemcell-tarballs', accountId: ACCOUNT, region: REGION }),
    cleanup,
  };
});

fifoQueueContract('local', async () => {
  const { root, cleanup } = await dataDir();
  return {
    queue: new LocalFifoQueue(root, 'stemcell-build-eu-west-1.fifo', { accountId: ACCOUNT, region: REGION }),
    cleanup,
  };
});

eventPublisherContract('local', async () => {
  const { root, cleanup } = await dataDir();
  const bus = new LocalEventBus(root, { name: 'stemcell', accountId: ACCOUNT, region: REGION });
  const seen: { source: string; detailType: string; detail: unknown }[] = [];
  bus.addRule('contract-observer', { source: [CONTRACT_SOURCE] }, (event) => {
    seen.push({ source: event.source, detailType: event['detail-type'], detail: event.detail });
  });
  return {
    publisher: bus,
    published: async () => {
      await bus.drain();
      return seen;
    },
    cleanup,
  };
});

busRulesContract('local', async () => {
  const { root, cleanup } = await dataDir();
  return {
    rules: new LocalEventBus(root, { name: 'stemcell', accountId: ACCOUNT, region: REGION }),
    cleanup,
  };
});

keyServiceContract('local', async () => {
  const { root, cleanup } = await dataDir();
  const keys = new LocalKeyService(root, { accountId: ACCOUNT, region: REGION });
  const { keyId } = keys.createKey({ alias: 'alias/stemcell' });
  return { keys, keyId, ownerAccountId: ACCOUNT, otherAccountId: '222222222222', cleanup };
});

organizationContract('local', async (fixture) => {
  const { root, cleanup } = await dataDir();
  const org = new LocalOrganizationDirectory(root, {
    organizationId: fixture.organizationId,
    managementAccountId: fixture.managementAccountId,
    ous: fixture.ous.map((o) => ({ ...o })),
    accounts: fixture.accounts.map((a) => ({ ...a })),
    launchTemplates: [],
  });
  return { org, cleanup };
});

releaseStoreContract('local', async () => {
  const { root, cleanup } = await dataDir();
  return { store: new LocalReleaseStore(root), cleanup };
});

memberAccountsContract('local', async (fixture) => {
  const { root, cleanup } = await dataDir();
  const members = new LocalMemberAccounts(root, { instanceRefreshSeconds: 3600 });
  const account = members.forAccount(fixture.accountId, fixture.region);
  const lt = account.createLaunchTemplate({
    name: fixture.launchTemplate.name,
    imageId: fixture.launchTemplate.imageId,
    tags: { 'stemcell:stream': fixture.launchTemplate.stream },
  });
  account.createLaunchTemplate({
    name: fixture.untaggedTemplate.name,
    imageId: fixture.untaggedTemplate.imageId,
  });
  account.createAutoScalingGroup({
    name: fixture.autoScalingGroup,
    launchTemplateId: lt.launchTemplateId,
    tags: { 'stemcell:stream': fixture.launchTemplate.stream },
  });
  return {
    members,
    readParameter: async (name) =>
      members.forAccount(fixture.accountId, fixture.region).getParameter(name)?.value,
    cleanup,
  };
});

volumesContract('local (directory volumes)', async () => {
  const { root, cleanup } = await dataDir();
  const dir = ebsStateDir(root, REGION);
  const keys = new LocalKeyService(root, { accountId: ACCOUNT, region: REGION });
  const { arn } = keys.ensureKey('alias/stemcell');
  const events = { emit: () => {} };
  const volumes = new LocalVolumes({ dir, region: REGION, backend: 'directory' });
  const snapshots = new LocalSnapshots({ dir, region: REGION, accountId: ACCOUNT, keys, volumes, events });
  const images = new LocalImages({ dir, region: REGION, accountId: ACCOUNT, snapshots, events });
  return {
    volumes,
    snapshots,
    images,
    kmsKeyId: arn,
    availabilityZone: 'eu-west-1a',
    instanceId: 'i-0123456789abcdef0',
    organizationArn: 'arn:aws:organizations::999999999999:organization/o-a1b2c3d4e5',
    ouArn: 'arn:aws:organizations::999999999999:ou/o-a1b2c3d4e5/ou-ab12-11111111',
    cleanup,
  };
});

launchModelContract('local', async () => {
  const { root, cleanup } = await dataDir();
  const member = '222222222222';
  const organizationId = 'o-a1b2c3d4e5';
  const organization = new LocalOrganizationDirectory(root, {
    organizationId,
    managementAccountId: ACCOUNT,
    ous: [{ id: 'ou-ab12-11111111', name: 'prod' }],
    accounts: [{ id: member, name: 'prod-a', ou: 'ou-ab12-11111111' }],
    launchTemplates: [],
  });
  const keys = new LocalKeyService(root, {
    accountId: ACCOUNT,
    region: REGION,
    organizationOf: (id) => (organization.parentOf(id) === undefined ? undefined : organizationId),
  });
  const { arn } = keys.ensureKey(
    'alias/stemcell',
    'stemcell',
    stemcellKeyPolicy({ accountId: ACCOUNT, region: REGION, organizationId }),
  );
  // infra/member.yml's custom resource, as the member: the Auto Scaling role's grant.
  await keys.createGrantAs(
    `arn:aws:sts::${member}:assumed-role/stemcell-key-grant/contract`,
    arn,
    autoScalingRoleArn(member),
    AUTO_SCALING_GRANT_OPERATIONS,
  );
  const { volumes, snapshots, images } = createLocalEbs({
    dir: ebsStateDir(root, REGION),
    region: REGION,
    accountId: ACCOUNT,
    keys,
    events: { emit: () => {} },
    backend: 'directory',
  });
  const volume = await volumes.create({
    stream: 'web',
    availabilityZone: `${REGION}a`,
    sizeGiB: 1,
    kmsKeyId: arn,
    tags: {},
    clientToken: 'web-volume',
  });
  const attachment = await volumes.attach(volume.volumeId, 'i-0123456789abcdef0');
  if (attachment.kind === 'directory') await writeFile(join(attachment.path, 'os-release'), 'ID=contract\n');
  await volumes.detach(volume.volumeId, 'i-0123456789abcdef0');
  const snapshot = await snapshots.create(volume.volumeId, {
    description: 'web r1',
    tags: {},
    clientToken: 's',
  });
  const register = (name: string) =>
    images.register({
      name,
      description: name,
      snapshotId: snapshot.snapshotId,
      architecture: 'x86_64',
      bootMode: 'uefi',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: name,
    });
  const shared = await register('stemcell/web/r1');
  const unshared = await register('stemcell/web/r1-private');
  await images.share(shared.imageId, { organizationArns: [(await organization.describe()).arn], ouArns: [] });
  const members = new LocalMemberAccounts(root);
  return {
    launch: new LocalLaunchModel({
      region: (r) => {
        if (r !== REGION) throw new Error(`no region ${r}`);
        return { images };
      },
      keys,
      organization,
      members,
    }),
    region: REGION,
    publisher: ACCOUNT,
    member,
    sharedImage: shared.imageId,
    privateImage: unshared.imageId,
    keyArn: arn,
    revokeGrant: async (id) => {
      keys.revokeGrants(arn, autoScalingRoleArn(id));
    },
    setAllowedImages: async (id, settings) => members.forAccount(id, REGION).setAllowedImages(settings),
    denyLaunches: async (id, statement) => members.forAccount(id, REGION).denyLaunches(statement),
    cleanup,
  };
});
