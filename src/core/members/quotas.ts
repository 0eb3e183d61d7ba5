// The AWS default quotas the fan-out to member accounts lives within, in one table: sync-subscribers plans with
// them, the quota-enforcing fake of the scale test enforces them, bench:fanout models with them, and
// docs/architecture.md prints their headroom at 10,000 accounts. Defaults as AWS publishes them ("Amazon
// EventBridge quotas", EventBridge User Guide; PutTargets and ListAccounts in the API references); a region
// not listed has the "every other supported Region" figure.

/** EventBridge: rules per event bus; 100 in af-south-1 and eu-south-1, 300 in every other Region. */
export function rulesPerBus(region: string): number {
  return region === 'af-south-1' || region === 'eu-south-1' ? 100 : 300;
}

const INVOCATIONS: Record<string, number> = {
  'us-east-1': 18_750,
  'us-east-2': 4_500,
  'us-west-1': 2_250,
  'us-west-2': 18_750,
  'af-south-1': 750,
  'ap-northeast-1': 2_250,
  'ap-northeast-3': 750,
  'ap-southeast-1': 2_250,
  'ap-southeast-2': 2_250,
  'ap-southeast-3': 750,
  'eu-central-1': 4_500,
  'eu-south-1': 750,
  'eu-west-1': 18_750,
  'eu-west-2': 2_250,
};
/** EventBridge: target invocations per second per account and Region (past it, deliveries are delayed). */
export function invocationsPerSecond(region: string): number {
  return INVOCATIONS[region] ?? 1_100;
}

const PUT_EVENTS: Record<string, number> = {
  'us-east-1': 10_000,
  'us-east-2': 2_400,
  'us-west-1': 1_200,
  'us-west-2': 10_000,
  'af-south-1': 400,
  'ap-northeast-1': 1_200,
  'ap-northeast-3': 400,
  'ap-southeast-1': 1_200,
  'ap-southeast-2': 1_200,
  'ap-southeast-3': 400,
  'eu-central-1': 2_400,
  'eu-south-1': 400,
  'eu-west-1': 10_000,
  'eu-west-2': 1_200,
};
/** EventBridge: PutEvents requests per second per account and Region. */
export function putEventsPerSecond(region: string): number {
  return PUT_EVENTS[region] ?? 600;
}

export const EVENTBRIDGE = {
  /** Targets per rule (hard). */
  targetsPerRule: 5,
  /** Entries per PutTargets / RemoveTargets request. */
  entriesPerPutTargets: 10,
  /** Entries per PutEvents request, and the request's total size. */
  entriesPerPutEvents: 10,
  putEventsRequestBytes: 256 * 1024,
  /** Event buses per account and Region. */
  busesPerAccount: 100,
  /** Characters of one event pattern. */
  eventPatternChars: 2_048,
  /** Characters of one bus's resource policy. */
  busPolicyChars: 10_240,
  /**
   * Requests per second of each control-plane API (PutRule, PutTargets, ListRules, CreateEventBus, ...). AWS
   * does not publish one figure per API; 50 per second is the long-documented default, so we plan with it.
   */
  controlPlanePerSecond: 50,
} as const;

export const ORGANIZATIONS = {
  /** MaxResults of ListAccounts / ListAccountsForParent / ListOrganizationalUnitsForParent. */
  pageSize: 20,
  /**
   * Requests per second we allow ourselves per Organizations API. AWS publishes no figure and throttles
   * management-account callers shared by every tool in the Organization, so we stay well below.
   */
  requestsPerSecond: 5,
} as const;

/** Lambda: the longest a function may run. sync-subscribers stops its writes a margin before it. */
export const LAMBDA_TIMEOUT_SECONDS = 900;

/** Commercial Regions (the aws partition) where EventBridge and Lambda run, as the quota table spans them. */
export const COMMERCIAL_REGIONS = [
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
  'af-south-1',
  'ap-east-1',
  'ap-east-2',
  'ap-south-1',
  'ap-south-2',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-northeast-3',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ap-southeast-5',
  'ap-southeast-7',
  'ca-central-1',
  'ca-west-1',
  'eu-central-1',
  'eu-central-2',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'eu-south-1',
  'eu-south-2',
  'eu-north-1',
  'il-central-1',
  'me-south-1',
  'me-central-1',
  'mx-central-1',
  'sa-east-1',
] as const;

/**
 * How many fan-out buses an audience plan needs: every account is one target, at most 5 per rule, rules of one
 * audience never share targets with another's, and a bus holds rulesPerBus(region) rules.
 */
export function fanoutBusesNeeded(audienceSizes: number[], region: string): number {
  const rules = audienceSizes.reduce((n, size) => n + Math.ceil(size / EVENTBRIDGE.targetsPerRule), 0);
  return Math.max(1, Math.ceil(rules / rulesPerBus(region)));
}

/**
 * A pacer that keeps calls of one API under a rate: take() waits (on the injected sleep) until a call may go.
 * Spreads calls evenly (one every 1/rate s) so no one-second window ever holds more than `perSecond`.
 */
export class RatePacer {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #next = 0;
  constructor(perSecond: number, now: () => number, sleep: (ms: number) => Promise<void>) {
    this.#intervalMs = 1000 / perSecond;
    this.#now = now;
    this.#sleep = sleep;
  }
  async take(): Promise<void> {
    const now = this.#now();
    const at = Math.max(now, this.#next);
    this.#next = at + this.#intervalMs;
    if (at > now) await this.#sleep(at - now);
  }
}

/** One RatePacer per API name, each at the same rate (an SDK client's calls, say). */
export class ApiPacer {
  readonly #pacers = new Map<string, RatePacer>();
  readonly #perSecond: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  constructor(
    perSecond: number,
    now: () => number = Date.now,
    sleep: (ms: number) => Promise<void> = realSleep,
  ) {
    this.#perSecond = perSecond;
    this.#now = now;
    this.#sleep = sleep;
  }
  take(api: string): Promise<void> {
    let pacer = this.#pacers.get(api);
    if (!pacer) {
      pacer = new RatePacer(this.#perSecond, this.#now, this.#sleep);
      this.#pacers.set(api, pacer);
    }
    return pacer.take();
  }
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
