// Small in-memory fakes of the ports for core and handler unit tests: just enough behaviour (idempotency by
// name / client token, guarded updates) to test the core's own logic, with every call observable.

import type { Readable } from 'node:stream';
import { parseConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';
import type { AnnounceDeps, Imaging, IngestDeps, RegisterDeps } from '#core/deps.ts';
import { releaseId as makeReleaseId } from '#core/model/naming.ts';
import type { ImageReady } from '#events/stemcell.ts';
import type {
  AccountRecord,
  AutoScalingGroup,
  BusEvent,
  BusRule,
  BusRules,
  Clock,
  EventPublisher,
  FifoQueue,
  ImageInfo,
  Images,
  LaunchTemplate,
  LaunchTemplateVersion,
  MemberAccount,
  MemberAccounts,
  ObjectStore,
  OrgAccount,
  OrganizationDirectory,
  QueueMessage,
  RegionRecord,
  RegionState,
  RegisterImageInput,
  Rejection,
  Release,
  ReleaseStore,
  RuleTarget,
  SnapshotInfo,
  Snapshots,
  StoredObject,
  Tags,
} from '#ports';

export const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
export const ORG_ID = 'o-abcdef1234';
export const OU_A = 'ou-ab12-aaaaaaaa';
export const OU_B = 'ou-ab12-bbbbbbbb';

export function testConfig(overrides: Record<string, unknown> = {}): StemcellConfig {
  return parseConfig({
    homeRegion: 'eu-west-1',
    streams: {
      'web-base': {
        regions: ['eu-west-1', 'us-east-1'],
        keep: 2,
        sharing: { organization: true },
        subscribers: { ssmParameter: '/stemcell/{stream}/{region}/image-id' },
        // The announce tests see images announced at once; boot-gate.test.ts turns the boot check on.
        bootCheck: { mode: 'none', allowUnverified: true },
      },
    },
    ...overrides,
  });
}

/** An "Image Ready" detail of one sequence, with ids derived from it (ami-000…<sequence>). */
export function imageReadyDetail(sequence: number, stream = 'web-base', region = 'eu-west-1'): ImageReady {
  return {
    version: 1,
    stream,
    revision: `r${sequence}`,
    sequence,
    releaseId: `${stream}#${String(sequence).padStart(8, '0')}`,
    region,
    imageId: `ami-${String(sequence).padStart(17, '0')}`,
    imageName: `stemcell/${stream}/r${sequence}`,
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    encrypted: true,
    kmsKeyId: 'k',
    snapshotId: 'snap-1',
    source: { bucket: 'b', key: 'k', etag: 'e', sha256: SHA },
    createdAt: '2026-11-20T10:00:00.000Z',
  };
}

export class FakeClock implements Clock {
  t: number;
  constructor(iso = '2026-11-20T10:00:00.000Z') {
    this.t = Date.parse(iso);
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export class RecordingLogger {
  lines: Array<{ level: string; message: string }> = [];
  debug = (message: string) => this.lines.push({ level: 'debug', message });
  info = (message: string) => this.lines.push({ level: 'info', message });
  warn = (message: string) => this.lines.push({ level: 'warn', message });
  error = (message: string) => this.lines.push({ level: 'error', message });
}

export class FakePublisher implements EventPublisher {
  events: BusEvent[] = [];
  failNext = 0;
  async publish(events: BusEvent[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('PutEvents failed (fake)');
    }
    this.events.push(...events);
  }
  ofType(detailType: string): BusEvent[] {
    return this.events.filter((e) => e.detailType === detailType);
  }
}

/** Records sends; like SQS FIFO, a repeated deduplication id is accepted but not enqueued again. */
export class FakeQueue implements FifoQueue {
  readonly name: string;
  messages: Array<{ body: string; groupId: string; deduplicationId: string }> = [];
  sends = 0;
  constructor(name: string) {
    this.name = name;
  }
  async send(body: string, groupId: string, deduplicationId: string) {
    this.sends++;
    if (!this.messages.some((m) => m.deduplicationId === deduplicationId)) {
      this.messages.push({ body, groupId, deduplicationId });
    }
    return { messageId: `m-${this.sends}` };
  }
  async receive(): Promise<QueueMessage[]> {
    return [];
  }
  async delete(): Promise<void> {}
  async changeVisibility(): Promise<void> {}
}

export class FakeObjects implements ObjectStore {
  readonly bucket: string;
  objects = new Map<string, StoredObject>();
  constructor(bucket = 'stemcell-tarballs') {
    this.bucket = bucket;
  }
  async put(key: string, _body: Readable | Buffer, metadata: Record<string, string> = {}) {
    const object = { bucket: this.bucket, key, etag: `etag-${key.length}`, size: 1, metadata };
    this.objects.set(key, object);
    return object;
  }
  async head(key: string) {
    return this.objects.get(key);
  }
  async get(): Promise<never> {
    throw new Error('not in this fake');
  }
}

export class FakeReleaseStore implements ReleaseStore {
  releases = new Map<string, Release>();
  sequences = new Map<string, number>();
  creates = 0;
  async create(input: Parameters<ReleaseStore['create']>[0]) {
    this.creates++;
    const existing = [...this.releases.values()].find(
      (r) => r.stream === input.stream && r.revision === input.revision,
    );
    if (existing) return { release: structuredClone(existing), created: false };
    const sequence = (this.sequences.get(input.stream) ?? 0) + 1;
    this.sequences.set(input.stream, sequence);
    const release: Release = {
      releaseId: makeReleaseId(input.stream, sequence),
      stream: input.stream,
      revision: input.revision,
      sequence,
      source: input.source,
      createdAt: input.uploadedAt,
      uploadedAt: input.uploadedAt,
      regions: Object.fromEntries(
        input.regions.map((r) => [r, { state: 'queued' as RegionState, updatedAt: input.uploadedAt }]),
      ),
      accounts: {},
    };
    this.releases.set(release.releaseId, release);
    return { release: structuredClone(release), created: true };
  }
  async get(id: string) {
    const r = this.releases.get(id);
    return r ? structuredClone(r) : undefined;
  }
  async list(stream?: string) {
    return [...this.releases.values()]
      .filter((r) => !stream || r.stream === stream)
      .map((r) => structuredClone(r));
  }
  async updateRegion(
    id: string,
    region: string,
    patch: Partial<RegionRecord>,
    onlyIf?: { stateIn: RegionState[] },
  ) {
    const r = this.releases.get(id);
    if (!r) throw new Error(`no release ${id}`);
    const current = r.regions[region] ?? { state: 'queued' as RegionState, updatedAt: '' };
    if (onlyIf && !onlyIf.stateIn.includes(current.state)) return false;
    r.regions[region] = { ...current, ...patch };
    return true;
  }
  async recordAccount(id: string, record: AccountRecord) {
    const r = this.releases.get(id);
    if (!r) throw new Error(`no release ${id}`);
    r.accounts[`${record.accountId}/${record.region}`] = record;
  }
  async markComplete(id: string, at: string) {
    const r = this.releases.get(id);
    if (!r || r.completedAt) return false;
    r.completedAt = at;
    return true;
  }
  async recordRejection(id: string, rejection: Rejection) {
    const r = this.releases.get(id);
    if (!r) throw new Error(`release ${id} does not exist`);
    if (r.rejections?.some((x) => x.source.etag === rejection.source.etag)) return false;
    r.rejections = [...(r.rejections ?? []), rejection];
    return true;
  }
  /** Test helper: a release in a given state without going through ingest. */
  seed(stream: string, revision: string, regions: string[], sha256: string | undefined = SHA): Release {
    const sequence = (this.sequences.get(stream) ?? 0) + 1;
    this.sequences.set(stream, sequence);
    const release: Release = {
      releaseId: makeReleaseId(stream, sequence),
      stream,
      revision,
      sequence,
      source: {
        bucket: 'stemcell-tarballs',
        key: `streams/${stream}/${revision}.tar.zst`,
        etag: 'etag',
        ...(sha256 ? { sha256 } : {}),
      },
      createdAt: '2026-11-20T10:00:00.000Z',
      uploadedAt: '2026-11-20T10:00:00.000Z',
      regions: Object.fromEntries(
        regions.map((r) => [
          r,
          { state: 'snapshotting' as RegionState, updatedAt: '2026-11-20T10:00:00.000Z' },
        ]),
      ),
      accounts: {},
    };
    this.releases.set(release.releaseId, release);
    return release;
  }
}

let counter = 0;
const nextId = (prefix: string) => `${prefix}-${(++counter).toString(16).padStart(17, '0')}`;

export class FakeSnapshots implements Snapshots {
  snapshots = new Map<string, SnapshotInfo>();
  deleted: string[] = [];
  async create(volumeId: string, input: { description: string; tags: Tags; clientToken: string }) {
    const snapshot: SnapshotInfo = {
      snapshotId: nextId('snap'),
      volumeId,
      state: 'completed',
      tags: input.tags,
      kmsKeyId: 'alias/stemcell',
      deltaBytes: 4096,
    };
    this.snapshots.set(snapshot.snapshotId, snapshot);
    return snapshot;
  }
  async get(id: string) {
    return this.snapshots.get(id);
  }
  async delete(id: string) {
    this.deleted.push(id);
    this.snapshots.delete(id);
  }
}

export class FakeImages implements Images {
  images = new Map<string, ImageInfo>();
  registerCalls = 0;
  shares: Array<{ imageId: string; organizationArns: string[]; ouArns: string[] }> = [];
  deprecated: string[] = [];
  deregistered: string[] = [];
  readonly region: string;
  constructor(region: string) {
    this.region = region;
  }
  async register(input: RegisterImageInput) {
    this.registerCalls++;
    const existing = [...this.images.values()].find(
      (i) => i.name === input.name && i.state !== 'deregistered',
    );
    if (existing) return { imageId: existing.imageId, created: false };
    const image: ImageInfo = {
      imageId: nextId('ami'),
      name: input.name,
      state: 'available',
      snapshotId: input.snapshotId,
      architecture: input.architecture,
      bootMode: input.bootMode,
      encrypted: true,
      kmsKeyId: `arn:aws:kms:${this.region}:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
      tags: input.tags,
      createdAt: '2026-11-20T10:02:20.000Z',
      sharedWith: { organizationArns: [], ouArns: [], accountIds: [] },
    };
    this.images.set(image.imageId, image);
    return { imageId: image.imageId, created: true };
  }
  async get(id: string) {
    return this.images.get(id);
  }
  async findByName(name: string) {
    return [...this.images.values()].find((i) => i.name === name);
  }
  async listByTag(key: string, value: string) {
    return [...this.images.values()].filter((i) => i.tags[key] === value);
  }
  /** Set to make share() accept the call and keep nothing (as a failed ModifyImageAttribute would). */
  dropShares = false;
  async share(imageId: string, to: { organizationArns: string[]; ouArns: string[] }) {
    this.shares.push({ imageId, ...to });
    const image = this.images.get(imageId);
    if (!image || this.dropShares) return;
    const union = (a: string[], b: string[]) => [...new Set([...a, ...b])];
    image.sharedWith = {
      organizationArns: union(image.sharedWith.organizationArns, to.organizationArns),
      ouArns: union(image.sharedWith.ouArns, to.ouArns),
      accountIds: image.sharedWith.accountIds,
    };
  }
  async deprecate(imageId: string, at: Date) {
    this.deprecated.push(imageId);
    const image = this.images.get(imageId);
    if (image) image.deprecatedAt = at.toISOString();
  }
  async tag(imageId: string, tags: Record<string, string>) {
    const image = this.images.get(imageId);
    if (image) image.tags = { ...image.tags, ...tags };
  }
  async deregister(imageId: string) {
    this.deregistered.push(imageId);
    const image = this.images.get(imageId);
    if (image) image.state = 'deregistered';
  }
}

export class FakeImaging {
  byRegion = new Map<string, Imaging & { images: FakeImages; snapshots: FakeSnapshots }>();
  of = (region: string) => {
    let found = this.byRegion.get(region);
    if (!found) {
      found = { images: new FakeImages(region), snapshots: new FakeSnapshots() };
      this.byRegion.set(region, found);
    }
    return found;
  };
}

export class FakeOrganization implements OrganizationDirectory {
  accounts: Array<OrgAccount & { ou: string }> = [];
  constructor(accounts: Array<{ id: string; ou: string; status?: OrgAccount['status'] }> = []) {
    for (const a of accounts) this.add(a.id, a.ou, a.status);
  }
  add(id: string, ou: string, status: OrgAccount['status'] = 'ACTIVE') {
    this.accounts.push({ id, name: `account-${id}`, status, ou });
  }
  remove(id: string) {
    this.accounts = this.accounts.filter((a) => a.id !== id);
  }
  async describe() {
    return {
      id: ORG_ID,
      arn: `arn:aws:organizations::111111111111:organization/${ORG_ID}`,
      managementAccountId: '111111111111',
    };
  }
  async listAccounts() {
    return this.accounts.map(({ ou: _ou, ...a }) => a);
  }
  async listAccountsInOu(ouId: string) {
    return this.accounts.filter((a) => a.ou === ouId).map(({ ou: _ou, ...a }) => a);
  }
  async ouArn(ouId: string) {
    return `arn:aws:organizations::111111111111:ou/${ORG_ID}/${ouId}`;
  }
}

/** Central-bus rules; enforces the 5-target limit like AWS does. */
export class FakeBusRules implements BusRules {
  readonly maxTargetsPerRule = 5;
  rules = new Map<string, BusRule>();
  calls: string[] = [];
  async listRules(prefix: string) {
    return [...this.rules.values()]
      .filter((r) => r.name.startsWith(prefix))
      .map((r) => ({ ...r, targets: [...r.targets] }));
  }
  async putRule(name: string, eventPattern: string) {
    this.calls.push(`putRule ${name}`);
    const rule = this.rules.get(name);
    this.rules.set(name, { name, eventPattern, targets: rule?.targets ?? [] });
  }
  async putTargets(ruleName: string, targets: RuleTarget[]) {
    this.calls.push(`putTargets ${ruleName} ${targets.map((t) => t.id).join(',')}`);
    const rule = this.rules.get(ruleName);
    if (!rule) throw new Error(`no rule ${ruleName}`);
    const merged = [...rule.targets.filter((t) => !targets.some((n) => n.id === t.id)), ...targets];
    if (merged.length > this.maxTargetsPerRule) throw new Error(`LimitExceededException on ${ruleName}`);
    rule.targets = merged;
  }
  async removeTargets(ruleName: string, ids: string[]) {
    this.calls.push(`removeTargets ${ruleName} ${ids.join(',')}`);
    const rule = this.rules.get(ruleName);
    if (rule) rule.targets = rule.targets.filter((t) => !ids.includes(t.id));
  }
  async deleteRule(ruleName: string) {
    this.calls.push(`deleteRule ${ruleName}`);
    const rule = this.rules.get(ruleName);
    if (rule && rule.targets.length > 0) throw new Error(`rule ${ruleName} still has targets`);
    this.rules.delete(ruleName);
  }
  /** accountId → rule name */
  assignment(): Map<string, string> {
    const out = new Map<string, string>();
    for (const rule of this.rules.values()) for (const t of rule.targets) out.set(t.id, rule.name);
    return out;
  }
}

/** A version's other settings (instance type, user data, …) as one opaque value: EC2 copies them from the source version. */
type FakeVersion = LaunchTemplateVersion & { clientToken?: string; settings?: string };
interface FakeTemplate extends LaunchTemplate {
  versions: FakeVersion[];
}

export class FakeMemberAccount implements MemberAccount {
  readonly accountId: string;
  readonly region: string;
  templates: FakeTemplate[] = [];
  groups: Array<AutoScalingGroup & { refreshing: boolean; refreshes: number }> = [];
  parameters = new Map<string, string>();
  constructor(accountId: string, region: string) {
    this.accountId = accountId;
    this.region = region;
  }
  addTemplate(
    name: string,
    stream: string,
    imageId = 'ami-00000000000000000',
    description?: string,
  ): FakeTemplate {
    const template: FakeTemplate = {
      launchTemplateId: `lt-${this.accountId}-${name}`,
      launchTemplateName: name,
      defaultVersionNumber: 1,
      latestVersionNumber: 1,
      tags: { 'stemcell:stream': stream },
      versions: [{ versionNumber: 1, imageId, ...(description ? { versionDescription: description } : {}) }],
    };
    this.templates.push(template);
    return template;
  }
  addGroup(name: string, template: FakeTemplate, refresh = true, launchTemplateVersion?: string) {
    const group = {
      name,
      launchTemplateId: template.launchTemplateId,
      ...(launchTemplateVersion ? { launchTemplateVersion } : {}),
      tags: {
        'stemcell:stream': template.tags['stemcell:stream'] ?? '',
        'stemcell:refresh': String(refresh),
      },
      refreshing: false,
      refreshes: 0,
    };
    this.groups.push(group);
    return group;
  }
  defaultImage(name: string): string | undefined {
    const t = this.templates.find((x) => x.launchTemplateName === name);
    return t?.versions.find((v) => v.versionNumber === t.defaultVersionNumber)?.imageId;
  }
  #template(id: string): FakeTemplate {
    const t = this.templates.find((x) => x.launchTemplateId === id);
    if (!t) throw new Error(`no launch template ${id}`);
    return t;
  }
  async listLaunchTemplates(key: string, value: string) {
    return this.templates
      .filter((t) => t.tags[key] === value)
      .map(({ versions: _v, ...t }) => ({ ...t, tags: { ...t.tags } }));
  }
  async getLaunchTemplateVersion(id: string, version: number) {
    const v = this.#template(id).versions.find((x) => x.versionNumber === version);
    if (!v) throw new Error(`no version ${version} of ${id}`);
    const { clientToken: _c, ...rest } = v;
    return rest;
  }
  async listLaunchTemplateVersions(id: string) {
    const t = this.#template(id);
    return t.versions.map(({ clientToken: _c, ...rest }) => ({
      ...rest,
      defaultVersion: rest.versionNumber === t.defaultVersionNumber,
    }));
  }
  /** Images of instances, when a test makes them visible. */
  instanceImages: string[] | undefined;
  instanceImageIds = async () => this.instanceImages ?? [];
  async createLaunchTemplateVersion(
    id: string,
    input: { sourceVersion: number; imageId: string; versionDescription: string; clientToken: string },
  ) {
    const t = this.#template(id);
    const again = t.versions.find((v) => v.clientToken === input.clientToken);
    if (again) return { versionNumber: again.versionNumber, imageId: again.imageId };
    const source = t.versions.find((v) => v.versionNumber === input.sourceVersion);
    if (!source) throw new Error(`no version ${input.sourceVersion} of ${id}`);
    const version: FakeVersion = {
      ...(source.settings !== undefined ? { settings: source.settings } : {}),
      versionNumber: t.latestVersionNumber + 1,
      imageId: input.imageId,
      versionDescription: input.versionDescription,
      clientToken: input.clientToken,
    };
    t.versions.push(version);
    t.latestVersionNumber = version.versionNumber;
    return { versionNumber: version.versionNumber, imageId: version.imageId };
  }
  async setDefaultVersion(id: string, version: number) {
    this.#template(id).defaultVersionNumber = version;
  }
  async putParameter(name: string, value: string) {
    this.parameters.set(name, value);
  }
  async listAutoScalingGroups(key?: string, value?: string) {
    return this.groups
      .filter((g) => key === undefined || g.tags[key] === value)
      .map((g) => ({
        name: g.name,
        launchTemplateId: g.launchTemplateId,
        launchTemplateVersion: g.launchTemplateVersion ?? '$Default',
        tags: { ...g.tags },
      }));
  }
  async instanceRefreshInProgress(name: string) {
    return this.groups.find((g) => g.name === name)?.refreshing ?? false;
  }
  async startInstanceRefresh(name: string) {
    const g = this.groups.find((x) => x.name === name);
    if (!g) throw new Error(`no group ${name}`);
    if (g.refreshing) throw new Error(`InstanceRefreshInProgress on ${name}`);
    g.refreshing = true;
    g.refreshes++;
    return { instanceRefreshId: `refresh-${g.refreshes}` };
  }
  async tagAutoScalingGroup(name: string, tags: Record<string, string>) {
    const g = this.groups.find((x) => x.name === name);
    if (!g) throw new Error(`no group ${name}`);
    g.tags = { ...g.tags, ...tags };
  }
}

export class FakeMembers implements MemberAccounts {
  accounts = new Map<string, FakeMemberAccount>();
  forAccount(accountId: string, region: string): FakeMemberAccount {
    const key = `${accountId}/${region}`;
    let account = this.accounts.get(key);
    if (!account) {
      account = new FakeMemberAccount(accountId, region);
      this.accounts.set(key, account);
    }
    return account;
  }
}

/** Twelve-digit account ids 200000000001, 200000000002, … */
export function accountIds(n: number, from = 1): string[] {
  return Array.from({ length: n }, (_, i) => String(200000000000 + from + i));
}

/** Register's and announce's deps over fresh fakes: one organization account in OU_A, images per region. */
export function imagingSetup(config: StemcellConfig = testConfig()) {
  const imaging = new FakeImaging();
  const deps = {
    config,
    clock: new FakeClock(),
    logger: new RecordingLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
  } satisfies RegisterDeps & AnnounceDeps;
  return { deps, imaging };
}

/** Ingest's deps over fresh fakes, with one build queue per region made on first use. */
export function ingestSetup<L extends RecordingLogger>(logger: L, config: StemcellConfig = testConfig()) {
  const queues = new Map<string, FakeQueue>();
  const deps = {
    config,
    clock: new FakeClock(),
    logger,
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    objects: new FakeObjects(),
    buildQueue(region: string) {
      let q = queues.get(region);
      if (!q) {
        q = new FakeQueue(`build-${region}.fifo`);
        queues.set(region, q);
      }
      return q;
    },
  } satisfies IngestDeps;
  return { deps, queues };
}

/** Keeps what each line says beside its message: the operator reads the ids in it. */
export class AttributeLogger extends RecordingLogger {
  attributes: Array<{ message: string; attributes: Record<string, unknown> }> = [];
  #keep(level: string, message: string, attributes: Record<string, unknown> = {}) {
    this.attributes.push({ message, attributes: structuredClone(attributes) });
    return this.lines.push({ level, message });
  }
  override info = (message: string, attributes?: Record<string, unknown>) =>
    this.#keep('info', message, attributes);
  override warn = (message: string, attributes?: Record<string, unknown>) =>
    this.#keep('warn', message, attributes);
  override error = (message: string, attributes?: Record<string, unknown>) =>
    this.#keep('error', message, attributes);
  of(message: string): Record<string, unknown> | undefined {
    return this.attributes.find((a) => a.message === message)?.attributes;
  }
}
