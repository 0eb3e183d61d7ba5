// What a builder of one region gets from AWS (BuilderServices of src/core/runtime.ts): the tarball bucket and the
// release table and central bus in the home region, the region's EBS volumes and snapshots, the key. The EC2
// agent (src/builder/agent.ts) and the functions' AWS wiring (functions/commons/aws/runtime.ts) both build it
// here, so the builder's AWS services are made in one place.
import { systemClock } from '#core/deps.ts';
import type { BuilderServices } from '#core/runtime.ts';
import type { AwsClients } from './clients.ts';
import { EventBridgePublisher } from './event-bus.ts';
import { S3ObjectStore } from './object-store.ts';
import { DynamoReleaseStore } from './release-store.ts';
import { EbsSnapshots } from './snapshots.ts';
import { Ec2Volumes } from './volumes.ts';

export interface BuilderDeployment {
  homeRegion: string;
  tableName: string;
  bucket: string;
  /** The central bus in the home region (name or ARN). */
  centralBus: string;
  kmsKeyId: string;
}

export function awsBuilderServices(
  clients: AwsClients,
  deployment: BuilderDeployment,
  region: string,
): BuilderServices {
  const home = deployment.homeRegion;
  const ec2 = clients.ec2(region);
  return {
    kmsKeyId: deployment.kmsKeyId,
    objects: new S3ObjectStore({ bucket: deployment.bucket, client: clients.s3(home) }),
    volumes: new Ec2Volumes({ client: ec2 }),
    snapshots: new EbsSnapshots({ client: ec2, ebs: clients.ebs(region) }),
    releases: new DynamoReleaseStore({ tableName: deployment.tableName, client: clients.dynamodb(home) }),
    publisher: new EventBridgePublisher({
      client: clients.eventBridge(home),
      eventBusName: deployment.centralBus,
    }),
    clock: systemClock,
  };
}
