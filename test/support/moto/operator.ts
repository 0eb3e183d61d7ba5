// An operator's rollback on AWS: the core's rollback() (what `stemcell rollback` runs on a local data folder)
// with the deployment's own wiring (functions/commons/aws-deps.ts, awsRuntime().rollback()). The Lambda runtime
// runs it in an environment like the announce function's (its variables and role): the CLI has no AWS mode
// for it yet.
import { rollback } from '#core/rollout/rollback.ts';

export async function rollbackOnAws(event: { stream: string; to: string }): Promise<{
  releaseId: string;
  revision: string;
  sequence: number;
  reused: { region: string; imageId: string }[];
  rebuilt: { region: string; reason: string }[];
}> {
  const { awsRuntime } = await import('#functions/commons/aws-deps.ts');
  const result = await rollback(await awsRuntime().rollback(), event.stream, event.to);
  return {
    releaseId: result.release.releaseId,
    revision: result.release.revision,
    sequence: result.release.sequence,
    reused: result.reused,
    rebuilt: result.rebuilt,
  };
}
