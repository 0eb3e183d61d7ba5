// Behavioural contracts of EventPublisher (PutEvents) and BusRules (rules + targets on the central bus).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BusEvent, BusRules, EventPublisher } from '#ports';

/** Events of the contract carry this source; a factory observes it on its bus. */
export const CONTRACT_SOURCE = 'stemcell.contract';

export type EventPublisherFactory = () => Promise<{
  publisher: EventPublisher;
  /** The events the bus accepted, in order. */
  published: () => Promise<{ source: string; detailType: string; detail: unknown }[]>;
  /** Makes the next `times` publications of this detail-type fail transiently (where the adapter can). */
  failNext?: (detailType: string, times: number) => void;
  cleanup?: () => Promise<void>;
}>;

export function eventPublisherContract(name: string, factory: EventPublisherFactory): void {
  describe(`Contract: EventPublisher (${name})`, () => {
    it('publishes every event of a large batch exactly once, detail intact', async () => {
      const { publisher, published, cleanup } = await factory();
      try {
        // prepare
        // A source of our own: adapters may validate stemcell's own detail-types against their schemas.
        const events: BusEvent[] = Array.from({ length: 12 }, (_, i) => ({
          source: CONTRACT_SOURCE,
          detailType: 'Contract Ping',
          detail: { version: 1, n: i, nested: { region: 'eu-west-1' } },
        }));
        // act
        await publisher.publish(events);
        // assess
        const got = await published();
        assert.equal(got.length, 12);
        assert.deepEqual(
          got.map((e) => (e.detail as { n: number }).n).sort((a, b) => a - b),
          [...Array(12).keys()],
        );
        assert.deepEqual((got[0]?.detail as { nested?: unknown } | undefined)?.nested, {
          region: 'eu-west-1',
        });
        assert.equal(got[0]?.source, CONTRACT_SOURCE);
      } finally {
        await cleanup?.();
      }
    });

    it('retries an entry that failed transiently, without duplicating the others', async (t) => {
      const { publisher, published, failNext, cleanup } = await factory();
      try {
        if (!failNext) {
          t.skip('this adapter cannot inject transient failures');
          return;
        }
        // prepare
        failNext('Contract Pong', 1);
        // act
        await publisher.publish([
          { source: CONTRACT_SOURCE, detailType: 'Contract Ping', detail: { n: 1 } },
          { source: CONTRACT_SOURCE, detailType: 'Contract Pong', detail: { n: 2 } },
        ]);
        // assess
        const got = await published();
        assert.deepEqual(got.map((e) => e.detailType).sort(), ['Contract Ping', 'Contract Pong']);
      } finally {
        await cleanup?.();
      }
    });
  });
}

export type BusRulesFactory = () => Promise<{ rules: BusRules; cleanup?: () => Promise<void> }>;

const PATTERN = JSON.stringify({ source: ['stemcell'], 'detail-type': ['Image Ready'] });
const target = (i: number) => ({
  id: `account-${i}`,
  arn: `arn:aws:events:eu-west-1:${String(i).padStart(12, '0')}:event-bus/stemcell`,
});

export function busRulesContract(name: string, factory: BusRulesFactory): void {
  describe(`Contract: BusRules (${name})`, () => {
    it('creates rules, lists them by prefix with their targets, removes targets and rules', async () => {
      const { rules, cleanup } = await factory();
      try {
        // act
        await rules.putRule('stemcell-subscribers-0', PATTERN, 'group 0');
        await rules.putRule('stemcell-subscribers-1', PATTERN, 'group 1');
        await rules.putRule('other-rule', PATTERN, 'not ours');
        await rules.putTargets('stemcell-subscribers-0', [target(1), target(2), target(3)]);
        await rules.putTargets('stemcell-subscribers-1', [target(4)]);
        await rules.removeTargets('stemcell-subscribers-0', ['account-2']);
        await rules.removeTargets('stemcell-subscribers-1', ['account-4']);
        await rules.deleteRule('stemcell-subscribers-1');
        // assess
        const listed = await rules.listRules('stemcell-subscribers-');
        assert.deepEqual(
          listed.map((r) => r.name),
          ['stemcell-subscribers-0'],
        );
        assert.deepEqual(JSON.parse(listed[0]?.eventPattern ?? '{}'), JSON.parse(PATTERN));
        assert.deepEqual(listed[0]?.targets.map((t) => t.id).sort(), ['account-1', 'account-3']);
        assert.equal(listed[0]?.targets.find((t) => t.id === 'account-1')?.arn, target(1).arn);
      } finally {
        await cleanup?.();
      }
    });

    it('enforces at most 5 targets per rule', async () => {
      const { rules, cleanup } = await factory();
      try {
        // prepare
        await rules.putRule('stemcell-subscribers-0', PATTERN, 'group 0');
        await rules.putTargets('stemcell-subscribers-0', [1, 2, 3, 4, 5].map(target));
        // act / assess
        assert.equal(rules.maxTargetsPerRule, 5);
        await assert.rejects(rules.putTargets('stemcell-subscribers-0', [target(6)]));
      } finally {
        await cleanup?.();
      }
    });
  });
}
