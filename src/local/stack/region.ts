// infra/region.yml, locally: each build region's EBS and AMI events go to the home region's default bus. (Its
// build queue and DLQ are in services.ts, its builder fleet in builders.ts.)
import type { LocalServices } from './services.ts';

export function wireRegionForwarding(services: LocalServices): void {
  for (const { region, bus } of services.regions.values()) {
    if (region === services.homeRegion) continue;
    bus.addRule(
      'stemcell-forward-to-home',
      { source: ['aws.ec2'], 'detail-type': ['EBS Snapshot Notification', 'EC2 AMI State Change'] },
      services.homeBus,
    );
  }
}
