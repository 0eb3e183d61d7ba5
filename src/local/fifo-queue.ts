// The local SQS FIFO queue: FIFO order per message group (a group is blocked while any of its messages is in
// flight), visibility timeout with redelivery, ApproximateReceiveCount, a 5-minute deduplication window on the
// explicit deduplication id, redrive to a dead-letter queue after maxReceiveCount receives, and long polling that
// returns as soon as a message becomes available. State is one JSON file per queue.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Clock, FifoQueue, QueueMessage } from '#ports';
import { realSleep, type Sleep, systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, writeJsonAtomic } from './json-state.ts';

const DEDUP_WINDOW_MS = 5 * 60 * 1000;
const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;
const MAX_WAIT_SECONDS = 20;
const MAX_BATCH = 10;

/** QueueMessage plus the attributes SQS reports, which the Lambda event shape carries. */
export interface LocalQueueMessage extends QueueMessage {
  deduplicationId: string;
  sequenceNumber: string;
  /** epoch ms */
  sentTimestamp: number;
  /** epoch ms */
  firstReceiveTimestamp: number;
  md5OfBody: string;
  /** Set on messages the redrive moved here from a source queue. */
  deadLetterQueueSourceArn?: string;
}

interface StoredMessage {
  messageId: string;
  body: string;
  groupId: string;
  deduplicationId: string;
  sequenceNumber: string;
  sentTimestamp: number;
  firstReceiveTimestamp?: number;
  receiveCount: number;
  /** epoch ms until which the message is in flight; 0 when never received or released */
  invisibleUntil: number;
  /** the receive that handed it out last; older receipt handles are stale */
  receiveNonce?: string;
  deadLetterQueueSourceArn?: string;
}
interface QueueState {
  lastSequence: number;
  messages: StoredMessage[];
  /** deduplication id → first send (epoch ms) and the message id it produced */
  dedup: Record<string, { sentAt: number; messageId: string }>;
}

export interface LocalFifoQueueOptions {
  accountId: string;
  region: string;
  clock?: Clock;
  /** Long polling waits with this; a test can pass one that advances a ManualClock. */
  sleep?: Sleep;
  /** Redrive policy: after maxReceiveCount receives, the next receive moves the message here. */
  deadLetterQueue?: LocalFifoQueue;
  maxReceiveCount?: number;
  /** Messages older than this are dropped (SQS default: 4 days). */
  retentionSeconds?: number;
}

export class LocalFifoQueue implements FifoQueue {
  readonly name: string;
  readonly accountId: string;
  readonly region: string;
  readonly arn: string;
  readonly url: string;
  readonly #path: string;
  readonly #clock: Clock;
  readonly #sleep: Sleep;
  readonly #deadLetterQueue: LocalFifoQueue | undefined;
  readonly #maxReceiveCount: number;
  readonly #retentionMs: number;
  #state: QueueState;
  readonly #waiters = new Set<() => void>();

  constructor(root: string, name: string, options: LocalFifoQueueOptions) {
    if (!/^[A-Za-z0-9_-]{1,75}\.fifo$/.test(name)) {
      throw new LocalServiceError(
        'InvalidParameterValue',
        `queue name ${JSON.stringify(name)}: a FIFO queue name is 1-80 characters of [A-Za-z0-9_-] ending in .fifo`,
      );
    }
    if (options.deadLetterQueue && options.maxReceiveCount === undefined) {
      throw new Error(`queue ${name}: a dead-letter queue needs maxReceiveCount`);
    }
    this.name = name;
    this.accountId = options.accountId;
    this.region = options.region;
    this.arn = `arn:aws:sqs:${this.region}:${this.accountId}:${name}`;
    this.url = `https://sqs.${this.region}.amazonaws.com/${this.accountId}/${name}`;
    this.#path = join(root, 'queues', this.accountId, this.region, `${name}.json`);
    this.#clock = options.clock ?? systemClock;
    this.#sleep = options.sleep ?? realSleep;
    this.#deadLetterQueue = options.deadLetterQueue;
    this.#maxReceiveCount = options.maxReceiveCount ?? Number.POSITIVE_INFINITY;
    this.#retentionMs = (options.retentionSeconds ?? 4 * 24 * 3600) * 1000;
    this.#state = readJson<QueueState>(this.#path, { lastSequence: 0, messages: [], dedup: {} });
  }

  async send(body: string, groupId: string, deduplicationId: string): Promise<{ messageId: string }> {
    requireId('MessageGroupId', groupId);
    requireId('MessageDeduplicationId', deduplicationId);
    if (body.length === 0)
      throw new LocalServiceError('InvalidParameterValue', 'message body must not be empty');
    const now = this.#now();
    this.#pruneDedup(now);
    const seen = this.#state.dedup[deduplicationId];
    if (seen) return { messageId: seen.messageId };
    const messageId = crypto.randomUUID();
    this.#state.dedup[deduplicationId] = { sentAt: now, messageId };
    this.#append({
      messageId,
      body,
      groupId,
      deduplicationId,
      sequenceNumber: '',
      sentTimestamp: now,
      receiveCount: 0,
      invisibleUntil: 0,
    });
    this.#persist();
    this.#wake();
    return { messageId };
  }

  async receive(opts: {
    max: number;
    visibilityTimeoutSeconds: number;
    waitSeconds?: number;
  }): Promise<LocalQueueMessage[]> {
    const { max, visibilityTimeoutSeconds } = opts;
    const waitSeconds = opts.waitSeconds ?? 0;
    if (!Number.isInteger(max) || max < 1 || max > MAX_BATCH) {
      throw new LocalServiceError(
        'InvalidParameterValue',
        `MaxNumberOfMessages ${max} is not in 1..${MAX_BATCH}`,
      );
    }
    requireVisibility(visibilityTimeoutSeconds);
    if (waitSeconds < 0 || waitSeconds > MAX_WAIT_SECONDS) {
      throw new LocalServiceError(
        'InvalidParameterValue',
        `WaitTimeSeconds ${waitSeconds} is not in 0..${MAX_WAIT_SECONDS}`,
      );
    }
    const deadline = this.#now() + waitSeconds * 1000;
    for (;;) {
      // One instant for the take and the wake-up time: a message whose visibility ends between the two reads of
      // the clock was otherwise neither taken nor waited for, and the poll slept to its deadline.
      const now = this.#now();
      const taken = this.#take(max, visibilityTimeoutSeconds, now);
      if (taken.length > 0 || now >= deadline) return taken;
      // Sleep until the deadline, the next visibility expiry, or an arrival, whichever comes first.
      const nextVisible = Math.min(
        ...this.#state.messages.filter((m) => m.invisibleUntil > now).map((m) => m.invisibleUntil),
      );
      await this.#waitForChange(Math.min(deadline, nextVisible) - this.#now());
    }
  }

  /** Deletes the message if the handle is its latest; a stale handle succeeds without deleting, as on SQS FIFO. */
  async delete(receiptHandle: string): Promise<void> {
    const { messageId, nonce } = parseReceiptHandle(receiptHandle, this.arn);
    const index = this.#state.messages.findIndex((m) => m.messageId === messageId);
    const message = this.#state.messages[index];
    if (!message || message.receiveNonce !== nonce) return;
    this.#state.messages.splice(index, 1);
    this.#persist();
    this.#wake();
  }

  async changeVisibility(receiptHandle: string, visibilityTimeoutSeconds: number): Promise<void> {
    requireVisibility(visibilityTimeoutSeconds);
    const { messageId, nonce } = parseReceiptHandle(receiptHandle, this.arn);
    const message = this.#state.messages.find((m) => m.messageId === messageId);
    const now = this.#now();
    if (!message || message.receiveNonce !== nonce || message.invisibleUntil <= now) {
      throw new LocalServiceError(
        'MessageNotInflight',
        `queue ${this.name}: message ${messageId} is not in flight under this receipt handle (deleted, visible again, or received since)`,
      );
    }
    message.invisibleUntil = now + visibilityTimeoutSeconds * 1000;
    this.#persist();
    if (visibilityTimeoutSeconds === 0) this.#wake();
  }

  // ---------------------------------------------------------------- local-only

  /** Counts like ApproximateNumberOfMessages / …NotVisible. */
  stats(): { visible: number; inFlight: number } {
    const now = this.#now();
    const inFlight = this.#state.messages.filter((m) => m.invisibleUntil > now).length;
    return { visible: this.#state.messages.length - inFlight, inFlight };
  }

  /** Every stored message, oldest first, without receiving it (for status output and tests). */
  peek(): LocalQueueMessage[] {
    return this.#state.messages.map((m) => this.#view(m, ''));
  }

  /**
   * A restarted local stack: the process that held the in-flight messages is gone, so they are visible again at
   * once instead of after their visibility timeout (their receive count stays: a crash counts as an attempt).
   */
  releaseInFlight(): number {
    const now = this.#now();
    const held = this.#state.messages.filter((m) => m.invisibleUntil > now);
    for (const m of held) {
      m.invisibleUntil = 0;
      m.receiveNonce = undefined;
    }
    if (held.length > 0) {
      this.#persist();
      this.#wake();
    }
    return held.length;
  }

  purge(): void {
    this.#state.messages = [];
    this.#persist();
  }

  // ---------------------------------------------------------------- internals

  #now(): number {
    return this.#clock.now().getTime();
  }

  #append(message: StoredMessage): void {
    this.#state.lastSequence++;
    message.sequenceNumber = String(this.#state.lastSequence).padStart(20, '0');
    this.#state.messages.push(message);
  }

  /** Called by the source queue's redrive. */
  #acceptRedriven(message: StoredMessage, sourceArn: string): void {
    this.#append({
      ...message,
      invisibleUntil: 0,
      deadLetterQueueSourceArn: sourceArn,
      receiveNonce: undefined,
    });
    this.#persist();
    this.#wake();
  }

  #take(max: number, visibilityTimeoutSeconds: number, now: number): LocalQueueMessage[] {
    try {
      return this.#takeUnsafe(max, visibilityTimeoutSeconds, now);
    } catch (err) {
      // A redrive whose write failed half-way: back to what is on disk, so nothing is lost in between.
      this.#state = readJson<QueueState>(this.#path, { lastSequence: 0, messages: [], dedup: {} });
      throw err;
    }
  }

  #takeUnsafe(max: number, visibilityTimeoutSeconds: number, now: number): LocalQueueMessage[] {
    let changed = this.#dropExpired(now);
    // A group is blocked while any of its messages is in flight.
    const blocked = new Set(this.#state.messages.filter((m) => m.invisibleUntil > now).map((m) => m.groupId));
    const taken: LocalQueueMessage[] = [];
    // Messages are kept in send order, so the walk visits each group's messages in order and the groups in the
    // order of their oldest message. Like SQS, one batch may hold several messages of one group, in order.
    for (let i = 0; i < this.#state.messages.length && taken.length < max; i++) {
      const m = this.#state.messages[i] as StoredMessage;
      if (blocked.has(m.groupId)) continue;
      if (this.#deadLetterQueue && m.receiveCount >= this.#maxReceiveCount) {
        this.#state.messages.splice(i, 1);
        i--;
        this.#deadLetterQueue.#acceptRedriven(m, this.arn);
        changed = true;
        continue;
      }
      m.receiveCount++;
      m.firstReceiveTimestamp ??= now;
      m.invisibleUntil = now + visibilityTimeoutSeconds * 1000;
      m.receiveNonce = crypto.randomUUID();
      changed = true;
      taken.push(this.#view(m, receiptHandle(this.arn, m.messageId, m.receiveNonce)));
    }
    if (changed) this.#persist();
    return taken;
  }

  #view(m: StoredMessage, handle: string): LocalQueueMessage {
    const view: LocalQueueMessage = {
      messageId: m.messageId,
      body: m.body,
      receiptHandle: handle,
      receiveCount: m.receiveCount,
      groupId: m.groupId,
      deduplicationId: m.deduplicationId,
      sequenceNumber: m.sequenceNumber,
      sentTimestamp: m.sentTimestamp,
      firstReceiveTimestamp: m.firstReceiveTimestamp ?? 0,
      md5OfBody: createHash('md5').update(m.body).digest('hex'),
    };
    if (m.deadLetterQueueSourceArn) view.deadLetterQueueSourceArn = m.deadLetterQueueSourceArn;
    return view;
  }

  #dropExpired(now: number): boolean {
    const before = this.#state.messages.length;
    this.#state.messages = this.#state.messages.filter((m) => now - m.sentTimestamp < this.#retentionMs);
    return this.#state.messages.length !== before;
  }

  #pruneDedup(now: number): void {
    for (const [id, entry] of Object.entries(this.#state.dedup)) {
      if (now - entry.sentAt >= DEDUP_WINDOW_MS) delete this.#state.dedup[id];
    }
  }

  #waitForChange(ms: number): Promise<void> {
    const abort = new AbortController();
    const wake = () => abort.abort();
    this.#waiters.add(wake);
    return this.#sleep(Math.max(0, ms), abort.signal).finally(() => {
      this.#waiters.delete(wake);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Writes the state before the call that changed it returns, as SQS has stored what it acknowledged. A failed
   * write (a full disk) undoes the change in memory too, and the call fails: nothing is acknowledged that a
   * restart would not find.
   */
  #persist(): void {
    try {
      writeJsonAtomic(this.#path, this.#state);
    } catch (err) {
      this.#state = readJson<QueueState>(this.#path, { lastSequence: 0, messages: [], dedup: {} });
      throw err;
    }
  }
}

function requireId(what: string, value: string): void {
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) {
    throw new LocalServiceError(
      'InvalidParameterValue',
      `${what} ${JSON.stringify(value)} must be 1-128 printable ASCII characters without spaces`,
    );
  }
}

function requireVisibility(seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_VISIBILITY_SECONDS) {
    throw new LocalServiceError(
      'InvalidParameterValue',
      `VisibilityTimeout ${seconds} is not in 0..${MAX_VISIBILITY_SECONDS}`,
    );
  }
}

function receiptHandle(queueArn: string, messageId: string, nonce: string): string {
  return Buffer.from(JSON.stringify({ q: queueArn, m: messageId, n: nonce })).toString('base64url');
}

function parseReceiptHandle(handle: string, queueArn: string): { messageId: string; nonce: string } {
  try {
    const parsed = JSON.parse(Buffer.from(handle, 'base64url').toString('utf8')) as {
      q?: unknown;
      m?: unknown;
      n?: unknown;
    };
    if (parsed.q === queueArn && typeof parsed.m === 'string' && typeof parsed.n === 'string') {
      return { messageId: parsed.m, nonce: parsed.n };
    }
  } catch {
    // fall through to the error below
  }
  throw new LocalServiceError(
    'ReceiptHandleIsInvalid',
    `receipt handle ${JSON.stringify(handle.slice(0, 40))}… is not valid for queue ${queueArn}`,
  );
}

// ---------------------------------------------------------------- Lambda event-source mapping

/** The `{ Records }` event Lambda's SQS event-source mapping delivers, matching Powertools SqsSchema. */
export function toLambdaSqsEvent(
  queue: { arn: string; region: string; accountId: string },
  messages: LocalQueueMessage[],
): { Records: LambdaSqsRecord[] } {
  return {
    Records: messages.map((m) => {
      const attributes: LambdaSqsRecord['attributes'] = {
        ApproximateReceiveCount: String(m.receiveCount),
        ApproximateFirstReceiveTimestamp: String(m.firstReceiveTimestamp),
        MessageDeduplicationId: m.deduplicationId,
        MessageGroupId: m.groupId,
        SenderId: queue.accountId,
        SentTimestamp: String(m.sentTimestamp),
        SequenceNumber: m.sequenceNumber,
      };
      if (m.deadLetterQueueSourceArn) attributes.DeadLetterQueueSourceArn = m.deadLetterQueueSourceArn;
      return {
        messageId: m.messageId,
        receiptHandle: m.receiptHandle,
        body: m.body,
        attributes,
        messageAttributes: {},
        md5OfBody: m.md5OfBody,
        eventSource: 'aws:sqs',
        eventSourceARN: queue.arn,
        awsRegion: queue.region,
      };
    }),
  };
}

export interface LambdaSqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: {
    ApproximateReceiveCount: string;
    ApproximateFirstReceiveTimestamp: string;
    MessageDeduplicationId: string;
    MessageGroupId: string;
    SenderId: string;
    SentTimestamp: string;
    SequenceNumber: string;
    DeadLetterQueueSourceArn?: string;
  };
  messageAttributes: Record<string, never>;
  md5OfBody: string;
  eventSource: 'aws:sqs';
  eventSourceARN: string;
  awsRegion: string;
}
