// An operator's rollback on AWS: the core's rollback() (what `stemcell rollback` runs on a local data folder)
// over the deployment's own wiring (functions/commons/aws-deps.ts). The Lambda runtime runs it in an
// environment like the announce function's (its variables and role): the CLI has no AWS mode for it yet.
import { rollback } from '#core/rollout/rollback.ts';

export async function rollbackOnAws(event: { stream: string; to: string }): Promise<{
  releaseId: string;
  revision: string;
  sequence: number;
  reused: { region: string; imageId: string }[];
  rebuilt: { region: string; reason: string }[];
}> {
  const { awsAnnounceDeps, awsIngestDeps } = await import('#functions/commons/aws-deps.ts');
  const deps = await awsAnnounceDeps();
  if (!deps.rollouts) throw new Error('the deployment wires no rollout store');
  // Regions whose earlier image is gone are rebuilt: their build queue, as ingest finds it.
  const { buildQueue } = await awsIngestDeps();
  const result = await rollback({ ...deps, rollouts: deps.rollouts, buildQueue }, event.stream, event.to);
  return {
    releaseId: result.release.releaseId,
    revision: result.release.revision,
    sequence: result.release.sequence,
    reused: result.reused,
    rebuilt: result.rebuilt,
  };
}
