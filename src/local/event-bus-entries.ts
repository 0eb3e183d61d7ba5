// What the local EventBridge checks and keeps track of, apart from the bus itself: the API's limits and names,
// the PutEvents entry checks EventBridge makes (and stemcell's own event contract), and the tracker of the
// deliveries in flight that drain() waits for.
import { EVENT_SOURCE, StemcellDetailSchemas, type StemcellDetailType } from '#events/stemcell.ts';
import type { BusEvent } from '#ports';
import { LocalServiceError } from './errors.ts';
import type { ServiceEventEnvelope } from './service-events.ts';

export const MAX_TARGETS_PER_RULE = 5;
const MAX_ENTRY_BYTES = 256 * 1024;
export const TARGET_ID = /^[.\-_A-Za-z0-9]{1,64}$/;
const RULE_NAME = /^[.\-_A-Za-z0-9]{1,64}$/;
export const BUS_ARN = /^arn:aws[a-z-]*:events:([a-z0-9-]+):(\d{12}):event-bus\/([.\-_A-Za-z0-9/]+)$/;

export function eventBusArn(region: string, accountId: string, name: string): string {
  return `arn:aws:events:${region}:${accountId}:event-bus/${name}`;
}

export interface DeadLetter {
  ruleName: string;
  ruleArn: string;
  targetId: string;
  targetArn: string;
  event: ServiceEventEnvelope;
  errorCode: string;
  errorMessage: string;
  attempts: number;
  failedAt: string;
}

/** Tracks every delivery in flight across the buses that share it, so drain() can wait for all of them. */
export class DeliveryTracker {
  readonly #pending = new Set<Promise<void>>();
  track(delivery: Promise<void>): void {
    this.#pending.add(delivery);
    // drain() reports a failed delivery; until then the rejection is held here, not left unhandled.
    delivery.then(
      () => this.#pending.delete(delivery),
      () => this.#pending.delete(delivery),
    );
  }
  get size(): number {
    return this.#pending.size;
  }
  async drain(): Promise<void> {
    // Deliveries start deliveries (a handler publishes, a bus forwards): loop until nothing is left.
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}

/** A PutEvents entry EventBridge would refuse, refused the same way; stemcell's own events against their schemas. */
export function validateEntry(entry: BusEvent, index: number): void {
  const at = `PutEvents entry ${index} (${entry.source} / ${entry.detailType})`;
  if (!entry.source || !entry.detailType) {
    throw new LocalServiceError('ValidationException', `${at}: source and detail-type are required`);
  }
  if (entry.source.startsWith('aws.')) {
    throw new LocalServiceError(
      'NotAuthorizedForSourceException',
      `${at}: only AWS services may put events with source ${entry.source}`,
    );
  }
  if (typeof entry.detail !== 'object' || entry.detail === null || Array.isArray(entry.detail)) {
    throw new LocalServiceError('ValidationException', `${at}: detail must be a JSON object`);
  }
  // Measured as EventBridge documents it ("Calculating PutEvents event entry size"): the UTF-8 bytes of
  // Source, DetailType, Detail (its JSON) and each of Resources. The API reference calls 256 KB the maximum
  // entry size, so an entry of exactly 256 KiB is taken.
  const size =
    Buffer.byteLength(entry.source) +
    Buffer.byteLength(entry.detailType) +
    Buffer.byteLength(JSON.stringify(entry.detail)) +
    (entry.resources ?? []).reduce((sum, resource) => sum + Buffer.byteLength(resource), 0);
  if (size > MAX_ENTRY_BYTES) {
    throw new LocalServiceError(
      'ValidationException',
      `${at}: entry is ${size} bytes, more than the 256 KiB EventBridge takes`,
    );
  }
  if (entry.source !== EVENT_SOURCE) return;
  const schema = StemcellDetailSchemas[entry.detailType as StemcellDetailType];
  if (!schema) {
    throw new LocalServiceError(
      'ValidationException',
      `${at}: unknown detail-type for source stemcell; expected one of ${Object.keys(StemcellDetailSchemas).join(', ')}`,
    );
  }
  const parsed = schema.safeParse(entry.detail);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `detail.${i.path.join('.')}: ${i.message}`).join('; ');
    throw new LocalServiceError('ValidationException', `${at}: ${issues}`);
  }
}

export function assertRuleName(name: string): void {
  if (!RULE_NAME.test(name)) {
    throw new LocalServiceError(
      'ValidationException',
      `rule name ${JSON.stringify(name)} is not valid ([.-_A-Za-z0-9]{1,64})`,
    );
  }
}
