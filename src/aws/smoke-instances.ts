// The boot gate on AWS: one short-lived smoke instance of the image, in the region's builder subnets. IMDSv2
// only, no key pair, a security group without inbound rules, tagged at launch (TagSpecifications) with the
// release and `stemcell:boot-check=<check id>`, which is also RunInstances' ClientToken, so a retried start
// never launches a second instance. It passes on the marker in GetConsoleOutput (Latest) or on both status
// checks passing; it is terminated by stop() (the core calls it in every outcome) and, should anything
// escape, by sweep() (a scheduled λ). The console output is kept in the tarball bucket under boot-checks/.
import {
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  type EC2Client,
  GetConsoleOutputCommand,
  type Instance,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { consoleLines } from '#core/release/boot-check.ts';
import { BOOT_CHECK_TAG } from '#core/release/boot-gate.ts';
import type { BootChecker, BootCheckRequest, BootObservation, Clock, ObjectStore } from '#ports';
import { isError } from './retry.ts';
import { tagSpecifications } from './tags.ts';

export interface SmokeInstanceSettings {
  /** The region's builder subnets (infra/region.yml); the first one with capacity is used. */
  subnetIds: string[];
  /** A security group with no inbound rule (infra/region.yml SmokeInstanceSecurityGroup). */
  securityGroupId: string;
  /** Small instance types per architecture. */
  instanceTypes?: { x86_64?: string; arm64?: string };
  /** Only if the image needs one at boot; the boot-check role then needs iam:PassRole on it. */
  instanceProfileArn?: string;
}

const DEFAULT_TYPES = { x86_64: 't3.micro', arm64: 't4g.micro' } as const;
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

export class Ec2SmokeInstances implements BootChecker {
  readonly mode = 'instance' as const;
  readonly #ec2: EC2Client;
  readonly #settings: SmokeInstanceSettings;
  readonly #consoleStore: ObjectStore | undefined;
  readonly #clock: Clock;

  constructor(opts: {
    client: EC2Client;
    settings: SmokeInstanceSettings;
    /** Where console output is kept (boot-checks/<check id>.console.log); not kept when absent. */
    consoleStore?: ObjectStore;
    clock?: Clock;
  }) {
    this.#ec2 = opts.client;
    this.#settings = opts.settings;
    this.#consoleStore = opts.consoleStore;
    this.#clock = opts.clock ?? { now: () => new Date() };
  }

  async start(request: BootCheckRequest): Promise<void> {
    if (await this.#find(request.checkId)) return;
    const subnets = this.#settings.subnetIds;
    if (subnets.length === 0)
      throw new Error(`boot check in ${request.region}: no builder subnet configured`);
    const instanceType =
      this.#settings.instanceTypes?.[request.architecture] ?? DEFAULT_TYPES[request.architecture];
    const tags = { ...request.tags, [BOOT_CHECK_TAG]: request.checkId, Name: `stemcell-boot-check` };
    let lastError: unknown;
    for (const subnetId of subnets) {
      try {
        await this.#ec2.send(
          new RunInstancesCommand({
            ImageId: request.imageId,
            InstanceType: instanceType as never,
            MinCount: 1,
            MaxCount: 1,
            // Same token, same instance: a retried start never launches a second one.
            ClientToken: `${request.checkId}-${subnetId}`.slice(0, 64),
            SubnetId: subnetId,
            SecurityGroupIds: [this.#settings.securityGroupId],
            MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
            InstanceInitiatedShutdownBehavior: 'terminate',
            ...(this.#settings.instanceProfileArn
              ? { IamInstanceProfile: { Arn: this.#settings.instanceProfileArn } }
              : {}),
            TagSpecifications: [
              ...tagSpecifications('instance', tags),
              ...tagSpecifications('volume', tags),
            ] as never,
          }),
        );
        return;
      } catch (err) {
        // No capacity for this type in this AZ: try the next subnet.
        if (!isError(err, 'InsufficientInstanceCapacity', 'Unsupported')) throw err;
        lastError = err;
      }
    }
    throw lastError;
  }

  async observe(request: BootCheckRequest): Promise<BootObservation> {
    const instance = await this.#find(request.checkId);
    if (!instance?.InstanceId) return { state: 'waiting' };
    const state = instance.State?.Name ?? 'pending';
    const startedAt = (instance.LaunchTime ?? this.#clock.now()).toISOString();
    if (state === 'pending') return { state: 'waiting' };
    if (state !== 'running') {
      const output = await this.#console(instance.InstanceId);
      return {
        state: 'stopped',
        startedAt,
        reason: `smoke instance ${instance.InstanceId} is ${state}${instance.StateReason?.Message ? ` (${instance.StateReason.Message})` : ''}`,
        lastLines: consoleLines(output),
      };
    }
    const output = await this.#console(instance.InstanceId);
    const seconds = (this.#clock.now().getTime() - Date.parse(startedAt)) / 1000;
    if (output.includes(request.marker))
      return { state: 'marker-seen', startedAt, seconds, consoleLog: `instance ${instance.InstanceId}` };
    const status = await this.#ec2.send(
      new DescribeInstanceStatusCommand({ InstanceIds: [instance.InstanceId], IncludeAllInstances: true }),
    );
    const s = status.InstanceStatuses?.[0];
    const system = s?.SystemStatus?.Status;
    const reachability = s?.InstanceStatus?.Status;
    if (system === 'ok' && reachability === 'ok')
      return { state: 'marker-seen', startedAt, seconds, consoleLog: `instance ${instance.InstanceId}` };
    if (system === 'impaired' || reachability === 'impaired')
      return {
        state: 'stopped',
        startedAt,
        reason: `smoke instance ${instance.InstanceId}: status checks impaired (system ${system}, instance ${reachability})`,
        lastLines: consoleLines(output),
      };
    return { state: 'booting', startedAt, lastLines: consoleLines(output) };
  }

  async stop(request: BootCheckRequest): Promise<{ consoleLog?: string; lastLines: string[] }> {
    const instances = await this.#findAll(request.checkId);
    let consoleLog: string | undefined;
    let lastLines: string[] = [];
    const first = instances[0]?.InstanceId;
    try {
      if (first) {
        const output = await this.#console(first);
        lastLines = consoleLines(output);
        if (this.#consoleStore && output) {
          const key = `boot-checks/${request.checkId}.console.log`;
          await this.#consoleStore.put(key, Buffer.from(output, 'utf8'));
          consoleLog = `s3://${this.#consoleStore.bucket}/${key}`;
        }
      }
    } finally {
      // Whatever happened to the console, the instances go.
      const ids = instances.map((i) => i.InstanceId).filter((id): id is string => !!id);
      if (ids.length > 0) await this.#ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    }
    return { ...(consoleLog ? { consoleLog } : {}), lastLines };
  }

  /** Terminates smoke instances launched more than `olderThanSeconds` ago (the sweeper λ). */
  async sweep(olderThanSeconds: number): Promise<string[]> {
    const out = await this.#ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag-key', Values: [BOOT_CHECK_TAG] },
          { Name: 'instance-state-name', Values: LIVE_STATES.filter((s) => s !== 'shutting-down') },
        ],
      }),
    );
    const cutoff = this.#clock.now().getTime() - olderThanSeconds * 1000;
    const stale = (out.Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .filter((i) => i.InstanceId && (i.LaunchTime?.getTime() ?? 0) < cutoff)
      .map((i) => i.InstanceId as string);
    if (stale.length > 0) await this.#ec2.send(new TerminateInstancesCommand({ InstanceIds: stale }));
    return stale;
  }

  async #console(instanceId: string): Promise<string> {
    try {
      const out = await this.#ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
      return out.Output ? Buffer.from(out.Output, 'base64').toString('utf8') : '';
    } catch (err) {
      // Not available yet (instance just started) or already gone: nothing to read.
      if (isError(err, 'InvalidInstanceID.NotFound', 'UnsupportedOperation')) return '';
      throw err;
    }
  }

  async #findAll(checkId: string): Promise<Instance[]> {
    const out = await this.#ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${BOOT_CHECK_TAG}`, Values: [checkId] },
          { Name: 'instance-state-name', Values: LIVE_STATES },
        ],
      }),
    );
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  }

  async #find(checkId: string): Promise<Instance | undefined> {
    return (await this.#findAll(checkId))[0];
  }
}
