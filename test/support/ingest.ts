// ingest() for tests of uploads that become (or already are) releases: a provenance refusal fails the test, and
// the result's release is typed as present.
import type { IngestDeps } from '#core/deps.ts';
import { type IngestResult, ingest, type ObjectCreated } from '#core/release/ingest.ts';

export type Ingested = Extract<IngestResult, { release: object }>;

export async function ingestRelease(deps: IngestDeps, object: ObjectCreated): Promise<Ingested> {
  const result = await ingest(deps, object);
  if (!result.release) throw new Error(`upload refused for its provenance: ${result.rejected}`);
  return result;
}
