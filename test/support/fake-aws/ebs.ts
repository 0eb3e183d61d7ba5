// Stateful fake of the EBS direct APIs stemcell calls, over the EC2 fake's snapshots (so DescribeSnapshots and
// DeleteSnapshot see them): StartSnapshot (idempotent on ClientToken; a child takes its parent's key, Encrypted
// with a parent is refused), PutSnapshotBlock (whole blocks, checksum checked), CompleteSnapshot (count and
// LINEAR checksum checked), ListSnapshotBlocks and GetSnapshotBlock.
import { createHash } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, fakeId } from './common.ts';
import type { FakeEc2, FakeSnapshot } from './ec2.ts';

const BLOCK_SIZE = 512 * 1024;

export class FakeEbs {
  readonly #ec2: FakeEc2;
  readonly #tokens = new Map<string, string>();

  constructor(ec2: FakeEc2) {
    this.#ec2 = ec2;
  }

  client(): EBSClient {
    const client = new EBSClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    const pending = (id: string): FakeSnapshot & { direct: NonNullable<FakeSnapshot['direct']> } => {
      const s = this.#ec2.snapshots.get(id);
      if (!s?.direct) throw awsError('ResourceNotFoundException', `The snapshot '${id}' does not exist.`);
      if (s.state !== 'pending') throw awsError('ValidationException', `snapshot ${id} is ${s.state}`);
      return s as FakeSnapshot & { direct: NonNullable<FakeSnapshot['direct']> };
    };
    mock.on(StartSnapshotCommand).callsFake((input) => {
      const again = input.ClientToken ? this.#tokens.get(input.ClientToken) : undefined;
      if (again) return { SnapshotId: again, BlockSize: BLOCK_SIZE, Status: 'pending' };
      if (input.ParentSnapshotId && input.Encrypted)
        throw awsError('ValidationException', 'ParentSnapshotId and Encrypted are exclusive');
      const parent = input.ParentSnapshotId ? this.#ec2.snapshots.get(input.ParentSnapshotId) : undefined;
      if (input.ParentSnapshotId && !parent) throw awsError('ResourceNotFoundException', 'no parent');
      const s: FakeSnapshot = {
        id: fakeId('snap'),
        volumeId: 'vol-ffffffff',
        state: 'pending',
        kmsKeyId: parent?.kmsKeyId ?? input.KmsKeyArn ?? '',
        description: input.Description ?? '',
        tags: Object.fromEntries(
          (input.Tags ?? []).map((t: { Key: string; Value: string }) => [t.Key, t.Value]),
        ),
        volumeSize: input.VolumeSize,
        direct: { ...(parent ? { parentId: parent.id } : {}), blocks: new Map(parent?.direct?.blocks ?? []) },
      };
      this.#ec2.snapshots.set(s.id, s);
      if (input.ClientToken) this.#tokens.set(input.ClientToken, s.id);
      return { SnapshotId: s.id, BlockSize: BLOCK_SIZE, Status: 'pending', KmsKeyArn: s.kmsKeyId };
    });
    const put = new Map<string, Map<number, Buffer>>();
    mock.on(PutSnapshotBlockCommand).callsFake((input) => {
      const s = pending(input.SnapshotId);
      const data = Buffer.from(input.BlockData as Uint8Array);
      if (data.length !== BLOCK_SIZE || input.DataLength !== BLOCK_SIZE)
        throw awsError('ValidationException', 'a block is 512 KiB');
      const digest = createHash('sha256').update(data).digest();
      if (digest.toString('base64') !== input.Checksum) throw awsError('ValidationException', 'checksum');
      s.direct.blocks.set(input.BlockIndex, data);
      const mine = put.get(s.id) ?? new Map<number, Buffer>();
      mine.set(input.BlockIndex, digest);
      put.set(s.id, mine);
      return { Checksum: input.Checksum, ChecksumAlgorithm: 'SHA256' };
    });
    mock.on(CompleteSnapshotCommand).callsFake((input) => {
      const s = pending(input.SnapshotId);
      const mine = put.get(s.id) ?? new Map<number, Buffer>();
      const hash = createHash('sha256');
      for (const i of [...mine.keys()].sort((a, b) => a - b)) hash.update(mine.get(i) as Buffer);
      if (input.ChangedBlocksCount !== mine.size || input.Checksum !== hash.digest('base64'))
        throw awsError('ValidationException', 'count or checksum');
      s.state = 'completed';
      return { Status: 'completed' };
    });
    mock.on(ListSnapshotBlocksCommand).callsFake((input) => {
      const s = this.#ec2.snapshots.get(input.SnapshotId);
      if (s?.state !== 'completed') throw awsError('ResourceNotFoundException', 'no snapshot');
      // A CreateSnapshot snapshot is readable too; this fake keeps no blocks for those.
      if (!s.direct) return { Blocks: [], VolumeSize: s.volumeSize, BlockSize: BLOCK_SIZE };
      return {
        Blocks: [...s.direct.blocks.keys()]
          .sort((a, b) => a - b)
          .map((i) => ({ BlockIndex: i, BlockToken: `${s.id}:${i}` })),
        VolumeSize: s.volumeSize,
        BlockSize: BLOCK_SIZE,
      };
    });
    mock.on(GetSnapshotBlockCommand).callsFake((input) => {
      const data = this.#ec2.snapshots.get(input.SnapshotId)?.direct?.blocks.get(input.BlockIndex);
      if (!data) throw awsError('ResourceNotFoundException', 'no block');
      return {
        BlockData: { transformToByteArray: async () => new Uint8Array(data) },
        DataLength: data.length,
        Checksum: createHash('sha256').update(data).digest('base64'),
        ChecksumAlgorithm: 'SHA256',
      };
    });
    return client;
  }
}
