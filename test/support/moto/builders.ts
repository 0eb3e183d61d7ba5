// A region's builder fleet on moto: the instance its Auto Scaling group (infra/region.yml BuilderGroup) launched
// runs the agent (builder-worker.ts) with the environment the group's launch template user data exports and
// the keys of the instance role (BuilderRole).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeLaunchTemplateVersionsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { agentConfigFromEnv } from '#builder/agent.ts';
import type { MotoAccounts } from './accounts.ts';
import type { DeployedStack } from './deploy.ts';

const WORKER = new URL('./builder-worker.ts', import.meta.url);

export interface Builder {
  region: string;
  instanceId: string;
  logs: string[];
  stop(): Promise<void>;
}

/** `export A='x' B=y` lines of a user data script: what it puts in the agent's environment. */
export function userDataExports(script: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of script.split('\n')) {
    const exported = /^\s*export\s+(.*)$/.exec(line)?.[1];
    if (!exported) continue;
    for (const m of exported.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(?:'([^']*)'|([^\s']*))/g))
      env[m[1] as string] = m[2] ?? m[3] ?? '';
  }
  return env;
}

export async function startBuilder(
  accounts: MotoAccounts,
  input: { stack: DeployedStack; stateDir: string },
): Promise<Builder> {
  const { account, region, resources } = input.stack;
  const ec2 = accounts.client(EC2Client, account, region);
  const asg = accounts.client(AutoScalingClient, account, region);
  const version = (
    await ec2.send(
      new DescribeLaunchTemplateVersionsCommand({
        LaunchTemplateId: resources.BuilderLaunchTemplate,
        Versions: ['$Latest'],
      }),
    )
  ).LaunchTemplateVersions?.[0];
  const userData = version?.LaunchTemplateData?.UserData;
  if (!userData) throw new Error(`${region}: the builder launch template has no user data`);
  const exported = userDataExports(Buffer.from(userData, 'base64').toString('utf8'));
  const stateDir = join(input.stateDir, region);
  await mkdir(join(stateDir, 'volumes'), { recursive: true });
  const config = agentConfigFromEnv({ ...exported, STEMCELL_STATE_DIR: stateDir });
  const group = (
    await asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [resources.BuilderGroup ?? ''] }),
    )
  ).AutoScalingGroups?.[0];
  const instance = group?.Instances?.find((i) => i.LifecycleState === 'InService') ?? group?.Instances?.[0];
  if (!instance?.InstanceId || !instance.AvailabilityZone)
    throw new Error(`${region}: the builder group ${resources.BuilderGroup} runs no instance`);
  const role = `arn:aws:iam::${account}:role/${resources.BuilderRole}`;
  const keys = await accounts.assumeRole(role, instance.InstanceId);
  const logs: string[] = [];
  const worker = new Worker(WORKER, {
    workerData: {
      config,
      identity: { instanceId: instance.InstanceId, availabilityZone: instance.AvailabilityZone, region },
      volumesDir: join(stateDir, 'volumes'),
    },
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
      ...(keys.sessionToken ? { AWS_SESSION_TOKEN: keys.sessionToken } : {}),
      // The one difference from EC2: this world's AWS answers at moto's address.
      AWS_ENDPOINT_URL: accounts.endpoint,
    },
  });
  const started = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: { log?: string; started?: string }) => {
      if (m.log) logs.push(m.log);
      if (m.started) resolve();
    });
    worker.once('error', reject);
  });
  await started;
  return {
    region,
    instanceId: instance.InstanceId,
    logs,
    async stop() {
      const stopped = new Promise<void>((resolve) =>
        worker.on('message', (m: { stopped?: boolean }) => m.stopped && resolve()),
      );
      worker.postMessage({ stop: true });
      // A job in hand finishes first; an idle agent is mid long-poll, which stop() would wait out (20 s).
      await Promise.race([stopped, new Promise((r) => setTimeout(r, 1000))]);
      await worker.terminate();
    },
  };
}
