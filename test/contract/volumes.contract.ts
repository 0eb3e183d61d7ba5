// Behavioural contracts of Volumes, Snapshots and Images (EBS / EC2): a volume per stream and AZ, attached and
// detached, snapshotted idempotently, registered as an image idempotently by name, shared, retired.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Images, Snapshots, Volumes } from '#ports';

export interface Ec2Ports {
  volumes: Volumes;
  snapshots: Snapshots;
  images: Images;
  kmsKeyId: string;
  availabilityZone: string;
  instanceId: string;
  /** Full ARNs of the organization and an OU, as the sharing step passes them. */
  organizationArn: string;
  ouArn: string;
  /** Writes something onto an attached volume so that a snapshot has content (no-op where irrelevant). */
  writeContent?: (attachment: Awaited<ReturnType<Volumes['attach']>>) => Promise<void>;
  cleanup?: () => Promise<void>;
}
export type Ec2PortsFactory = () => Promise<Ec2Ports>;

async function streamVolume(p: Ec2Ports, stream: string) {
  return p.volumes.create({
    stream,
    availabilityZone: p.availabilityZone,
    sizeGiB: 1,
    kmsKeyId: p.kmsKeyId,
    tags: { 'stemcell:stream': stream },
    clientToken: `${stream}-volume`,
  });
}

async function snapshotOf(p: Ec2Ports, volumeId: string, token: string) {
  const attachment = await p.volumes.attach(volumeId, p.instanceId);
  try {
    await p.writeContent?.(attachment);
  } finally {
    await p.volumes.detach(volumeId, p.instanceId);
  }
  return p.snapshots.create(volumeId, {
    description: 'stemcell web r1',
    tags: { 'stemcell:stream': 'web', 'stemcell:revision': 'r1' },
    clientToken: token,
  });
}

export function volumesContract(name: string, factory: Ec2PortsFactory): void {
  describe(`Contract: Volumes (${name})`, () => {
    it('creates an encrypted volume for a stream, finds it in its AZ only, attaches and detaches it', async () => {
      const p = await factory();
      try {
        // act
        const none = await p.volumes.findForStream('web', p.availabilityZone);
        const created = await streamVolume(p, 'web');
        const found = await p.volumes.findForStream('web', p.availabilityZone);
        const elsewhere = await p.volumes.findForStream('web', 'xx-nowhere-1z');
        const attachment = await p.volumes.attach(created.volumeId, p.instanceId);
        const attached = await p.volumes.findForStream('web', p.availabilityZone);
        await p.volumes.detach(created.volumeId, p.instanceId);
        const detached = await p.volumes.findForStream('web', p.availabilityZone);
        // assess
        assert.equal(none, undefined);
        assert.equal(created.stream, 'web');
        assert.equal(created.state, 'available');
        assert.equal(created.kmsKeyId, p.kmsKeyId);
        assert.equal(created.availabilityZone, p.availabilityZone);
        assert.equal(found?.volumeId, created.volumeId);
        assert.equal(elsewhere, undefined);
        assert.ok(attachment.kind === 'block' ? attachment.devicePath : attachment.path);
        assert.equal(attached?.state, 'in-use');
        assert.equal(attached?.attachedTo, p.instanceId);
        assert.equal(detached?.state, 'available');
        assert.equal(detached?.attachedTo, undefined);
      } finally {
        await p.cleanup?.();
      }
    });

    it('grows a volume', async () => {
      const p = await factory();
      try {
        // prepare
        const created = await streamVolume(p, 'web');
        // act
        await p.volumes.grow(created.volumeId, 2);
        // assess
        assert.equal((await p.volumes.findForStream('web', p.availabilityZone))?.sizeGiB, 2);
      } finally {
        await p.cleanup?.();
      }
    });
  });

  describe(`Contract: Snapshots (${name})`, () => {
    it('snapshots a volume once per client token, encrypted and tagged, and deletes it', async () => {
      const p = await factory();
      try {
        // prepare
        const volume = await streamVolume(p, 'web');
        // act
        const snap = await snapshotOf(p, volume.volumeId, 'web#00000001/eu-west-1');
        const again = await p.snapshots.create(volume.volumeId, {
          description: 'stemcell web r1',
          tags: { 'stemcell:stream': 'web', 'stemcell:revision': 'r1' },
          clientToken: 'web#00000001/eu-west-1',
        });
        const got = await p.snapshots.get(snap.snapshotId);
        await p.snapshots.delete(snap.snapshotId);
        // assess
        assert.equal(again.snapshotId, snap.snapshotId);
        assert.equal(snap.volumeId, volume.volumeId);
        assert.equal(got?.tags['stemcell:revision'], 'r1');
        assert.ok(got && ['pending', 'completed'].includes(got.state));
        assert.equal(got?.kmsKeyId, p.kmsKeyId);
        assert.equal(await p.snapshots.get(snap.snapshotId), undefined);
      } finally {
        await p.cleanup?.();
      }
    });
  });

  describe(`Contract: Images (${name})`, () => {
    it('registers once per name, finds by name and tag, shares, deprecates and deregisters', async () => {
      const p = await factory();
      try {
        // prepare
        const volume = await streamVolume(p, 'web');
        const snap = await snapshotOf(p, volume.volumeId, 'web#00000001/eu-west-1');
        const input = {
          name: 'stemcell/web/r1',
          description: 'stemcell web r1',
          snapshotId: snap.snapshotId,
          architecture: 'x86_64' as const,
          bootMode: 'uefi' as const,
          rootDeviceName: '/dev/xvda',
          tags: { 'stemcell:stream': 'web', 'stemcell:revision': 'r1' },
          clientToken: 'web#00000001/eu-west-1/image',
        };
        // act
        const first = await p.images.register(input);
        const second = await p.images.register(input);
        const got = await p.images.get(first.imageId);
        const byName = await p.images.findByName('stemcell/web/r1');
        const byTag = await p.images.listByTag('stemcell:stream', 'web');
        await p.images.share(first.imageId, { organizationArns: [p.organizationArn], ouArns: [p.ouArn] });
        const shared = await p.images.get(first.imageId);
        const at = new Date('2030-01-01T00:00:00.000Z');
        await p.images.deprecate(first.imageId, at);
        const deprecated = await p.images.get(first.imageId);
        await p.images.deregister(first.imageId);
        const gone = await p.images.get(first.imageId);
        // assess
        assert.equal(first.created, true);
        assert.deepEqual(second, { imageId: first.imageId, created: false });
        assert.equal(got?.name, 'stemcell/web/r1');
        assert.equal(got?.snapshotId, snap.snapshotId);
        assert.equal(got?.architecture, 'x86_64');
        assert.equal(got?.bootMode, 'uefi');
        assert.equal(got?.encrypted, true);
        assert.equal(got?.kmsKeyId, p.kmsKeyId);
        assert.equal(got?.tags['stemcell:stream'], 'web');
        assert.equal(byName?.imageId, first.imageId);
        assert.deepEqual(
          byTag.map((i) => i.imageId),
          [first.imageId],
        );
        assert.deepEqual(shared?.sharedWith.organizationArns, [p.organizationArn]);
        assert.deepEqual(shared?.sharedWith.ouArns, [p.ouArn]);
        assert.equal(new Date(deprecated?.deprecatedAt ?? 0).getTime(), at.getTime());
        assert.ok(gone === undefined || gone.state === 'deregistered');
      } finally {
        await p.cleanup?.();
      }
    });
  });
}
