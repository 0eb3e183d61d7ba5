import { join } from 'node:path';
import { releaseId as makeReleaseId } from '#core/model/naming.ts';
import { StreamName } from '#events/stemcell.ts';
import type {
  AccountRecord,
  Clock,
  RegionRecord,
  RegionState,
  Rejection,
  Release,
  ReleaseStore,
  SourceRef,
} from '#ports';
import { systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';

interface StreamIndex {
  lastSequence: number;
  revisions: Record<string, string>;
}

export class LocalReleaseStore implements ReleaseStore {
  private readonly dir: string;
  private readonly clock: Clock;

  constructor(root: string, options: { clock?: Clock } = {}) {
    this.dir = join(root, 'releases');
    this.clock = options.clock ?? systemClock;
  }

  async create(input: {
    stream: string;
    revision: string;
    source: SourceRef;
    regions: string[];
    uploadedAt: string;
  }): Promise<{ release: Release; created: boolean }> {
    const stream = StreamName.safeParse(input.stream);
    if (!stream.success) {
      throw new LocalServiceError(
        'ValidationException',
        `stream ${JSON.stringify(input.stream)}: ${stream.error.issues[0]?.message}`,
      );
    }
    if (input.regions.length === 0) {
      throw new LocalServiceError(
        'ValidationException',
        `release ${input.stream}/${input.revision}: no regions`,
      );
    }
    const indexPath = this.indexPath(input.stream);
    const index = readJson<StreamIndex>(indexPath, { lastSequence: 0, revisions: {} });
    const existingId = index.revisions[input.revision];
    if (existingId) {
      const existing = this.read(existingId);
      if (existing) return { release: existing, created: false };
    }
    const sequence = index.lastSequence + 1;
    const now = this.clock.now().toISOString();
    const release: Release = {
      releaseId: makeReleaseId(input.stream, sequence),
      stream: input.stream,
      revision: input.revision,
      sequence,
      source: input.source,
      createdAt: now,
      uploadedAt: input.uploadedAt,
      regions: Object.fromEntries(
        input.regions.map((r) => [r, { state: 'queued', updatedAt: now } satisfies RegionRecord]),
      ),
      accounts: {},
    };
    // Release first, index second: a crash in between leaves an orphan file, never an index entry without a release.
    this.write(release);
    index.lastSequence = sequence;
    index.revisions[input.revision] = release.releaseId;
    writeJsonAtomic(indexPath, index);
    return { release, created: true };
  }

  async get(releaseId: string): Promise<Release | undefined> {
    return this.read(releaseId);
  }

  /** Releases of one stream (or all), ordered by stream, then sequence. */
  async list(stream?: string): Promise<Release[]> {
    return readJsonDir<Release>(this.dir)
      .filter((r) => stream === undefined || r.stream === stream)
      .sort((a, b) => (a.stream === b.stream ? a.sequence - b.sequence : a.stream < b.stream ? -1 : 1));
  }

  async updateRegion(
    releaseId: string,
    region: string,
    patch: Partial<RegionRecord>,
    onlyIf?: { stateIn: RegionState[] },
  ): Promise<boolean> {
    const release = this.require(releaseId);
    const current = release.regions[region];
    if (onlyIf && (!current || !onlyIf.stateIn.includes(current.state))) return false;
    const state = patch.state ?? current?.state;
    if (!state) {
      throw new LocalServiceError(
        'ValidationException',
        `release ${releaseId} has no region ${region}; give a state to add it`,
      );
    }
    release.regions[region] = {
      ...current,
      ...patch,
      state,
      updatedAt: patch.updatedAt ?? this.clock.now().toISOString(),
    };
    this.write(release);
    return true;
  }

  async recordAccount(releaseId: string, record: AccountRecord): Promise<void> {
    const release = this.require(releaseId);
    release.accounts[`${record.accountId}/${record.region}`] = record;
    this.write(release);
  }

  async recordRejection(releaseId: string, rejection: Rejection): Promise<boolean> {
    const release = this.require(releaseId);
    if (release.rejections?.some((r) => r.source.etag === rejection.source.etag)) return false;
    release.rejections = [...(release.rejections ?? []), rejection];
    this.write(release);
    return true;
  }

  /** Sets completedAt once; false if the release was already complete. */
  async markComplete(releaseId: string, completedAt: string): Promise<boolean> {
    const release = this.require(releaseId);
    if (release.completedAt) return false;
    release.completedAt = completedAt;
    this.write(release);
    return true;
  }

  // ---------------------------------------------------------------- internals

  private indexPath(stream: string): string {
    return join(this.dir, 'streams', `${stream}.json`);
  }

  private releasePath(releaseId: string): string {
    return join(this.dir, `${encodeURIComponent(releaseId)}.json`);
  }

  private read(releaseId: string): Release | undefined {
    return readJson<Release | undefined>(this.releasePath(releaseId), undefined);
  }

  private require(releaseId: string): Release {
    const release = this.read(releaseId);
    if (!release)
      throw new LocalServiceError('ResourceNotFoundException', `release ${releaseId} does not exist`, 404);
    return release;
  }

  private write(release: Release): void {
    writeJsonAtomic(this.releasePath(release.releaseId), release);
  }
}
