// One builder instance of a region's Auto Scaling group, in a worker thread: the agent's real code
// (src/builder/agent.ts startAgent) with the AWS adapters, the environment infra/region.yml's user data exports,
// and the instance role's keys. What the test host supplies instead of EC2: the instance's identity (its id and
// Availability Zone in moto), and a directory per EBS volume where the attached block device would appear.
// AttachVolume, DetachVolume, CreateVolume and CreateSnapshot still go to EC2 (moto).
import { enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { InstanceIdentity } from '#aws/instance-identity.ts';
import type { AgentConfig } from '#builder/agent.ts';
import type { Attachment, Volumes } from '#ports';

// The same code cache as the Lambda environments' (lambda-worker.ts): the agent loads much the same modules.
enableCompileCache(join(tmpdir(), 'stemcell-e2e-compile-cache'));
const { Ec2Volumes } = await import('#aws/volumes.ts');
const { startAgent } = await import('#builder/agent.ts');
const { LocalVolumes } = await import('#local/volumes.ts');

interface Setup {
  config: AgentConfig;
  identity: InstanceIdentity;
  /** Where each attached volume's directory is made. */
  volumesDir: string;
}

/** EBS volumes through EC2's API; what the instance sees of an attached volume is a directory. */
class DirectoryAttachedVolumes implements Volumes {
  readonly #ebs: InstanceType<typeof Ec2Volumes>;
  readonly #dir: string;

  constructor(ec2: EC2Client, dir: string) {
    // The device lookup is never asked for a device: attach() hands the directory instead.
    this.#ebs = new Ec2Volumes({ client: ec2, deviceLookup: async (volumeId) => join(dir, volumeId) });
    this.#dir = dir;
  }

  findForStream(...args: Parameters<Volumes['findForStream']>) {
    return this.#ebs.findForStream(...args);
  }
  create(...args: Parameters<Volumes['create']>) {
    return this.#ebs.create(...args);
  }
  async attach(volumeId: string, instanceId: string): Promise<Attachment> {
    await this.#ebs.attach(volumeId, instanceId);
    return { kind: 'directory', path: join(this.#dir, volumeId) };
  }
  detach(...args: Parameters<Volumes['detach']>) {
    return this.#ebs.detach(...args);
  }
  grow(...args: Parameters<Volumes['grow']>) {
    return this.#ebs.grow(...args);
  }
}

const setup = workerData as Setup;
const log = (line: string) => parentPort?.postMessage({ log: line });
const agent = await startAgent(setup.config, log, {
  // The e2e streams are create-snapshot streams: no direct stream's disk image is ever made here.
  diskImages: (region) =>
    new LocalVolumes({ dir: join(setup.volumesDir, 'disks'), region, backend: 'directory', log }),
  identity: setup.identity,
  volumes: (ec2) => new DirectoryAttachedVolumes(ec2, setup.volumesDir),
});
parentPort?.postMessage({ started: agent.instanceId });
parentPort?.on('message', async (message: { stop?: boolean }) => {
  if (!message.stop) return;
  await agent.stop();
  parentPort?.postMessage({ stopped: true });
});
