// Stateful fake of Auto Scaling groups and instance refreshes.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import {
  AutoScalingClient,
  CreateOrUpdateTagsCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  StartInstanceRefreshCommand,
} from '@aws-sdk/client-auto-scaling';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, fakeId, page } from './common.ts';

export class FakeAutoScaling {
  readonly groups = new Map<
    string,
    { launchTemplateId?: string; tags: Record<string, string>; refreshes: { id: string; status: string }[] }
  >();
  readonly pageSize = 2;

  addGroup(name: string, tags: Record<string, string>, launchTemplateId?: string): void {
    this.groups.set(name, { tags, refreshes: [], ...(launchTemplateId ? { launchTemplateId } : {}) });
  }

  client(): AutoScalingClient {
    const client = new AutoScalingClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(DescribeAutoScalingGroupsCommand).callsFake((input) => {
      const list = [...this.groups.entries()].filter(([, g]) =>
        (input.Filters ?? []).every((f: { Name: string; Values: string[] }) => {
          const key = f.Name.startsWith('tag:') ? f.Name.slice(4) : undefined;
          return key !== undefined && f.Values.includes(g.tags[key] ?? '\u0000');
        }),
      );
      const p = page(list, input.NextToken, this.pageSize);
      return {
        AutoScalingGroups: p.items.map(([name, g]) => ({
          AutoScalingGroupName: name,
          LaunchTemplate: g.launchTemplateId ? { LaunchTemplateId: g.launchTemplateId } : undefined,
          Tags: Object.entries(g.tags).map(([Key, Value]) => ({ Key, Value })),
        })),
        NextToken: p.next,
      };
    });
    mock.on(DescribeInstanceRefreshesCommand).callsFake((input) => {
      const g = this.groups.get(input.AutoScalingGroupName);
      if (!g) throw awsError('ValidationError', 'no such group');
      return { InstanceRefreshes: g.refreshes.map((r) => ({ InstanceRefreshId: r.id, Status: r.status })) };
    });
    mock.on(StartInstanceRefreshCommand).callsFake((input) => {
      const g = this.groups.get(input.AutoScalingGroupName);
      if (!g) throw awsError('ValidationError', 'no such group');
      if (g.refreshes.some((r) => r.status === 'InProgress' || r.status === 'Pending')) {
        throw awsError('InstanceRefreshInProgress');
      }
      const id = fakeId('refresh', 32);
      g.refreshes.unshift({ id, status: 'InProgress' });
      return { InstanceRefreshId: id };
    });
    mock.on(CreateOrUpdateTagsCommand).callsFake((input) => {
      for (const tag of input.Tags ?? []) {
        const g = this.groups.get(tag.ResourceId);
        if (!g || tag.ResourceType !== 'auto-scaling-group')
          throw awsError('ValidationError', 'no such group');
        if (tag.PropagateAtLaunch !== false)
          throw new Error('stemcell tags groups only, never their instances');
        g.tags[tag.Key] = tag.Value ?? '';
      }
      return {};
    });
    return client;
  }
}
