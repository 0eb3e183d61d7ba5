// Publishing to member accounts through the fan-out buses. announce, the rollout waves and Release Complete emit
// subscriber events onto the central bus as always; this publisher puts a copy of each on every fan-out bus too,
// where sync-subscribers' rules forward it to the accounts of its audience. EventBridge forwards an event from
// one bus to another only once (a bus cannot pass on what another bus sent it), so the copies go by PutEvents,
// not by a rule on the central bus. Same code locally and on AWS: only the FanoutBuses adapter differs.
import type { BusEvent, EventPublisher, FanoutBuses } from '#ports';
import { SUBSCRIBER_DETAIL_TYPES } from './forwarding-rules.ts';

const FOR_MEMBERS = new Set<string>(SUBSCRIBER_DETAIL_TYPES);

export function fanOutPublisher(
  inner: EventPublisher,
  fanout: Pick<FanoutBuses, 'list'>,
  centralBus: string,
): EventPublisher {
  return {
    async publish(events: BusEvent[]): Promise<void> {
      const forMembers = events.filter(
        (e) =>
          e.source === 'stemcell' &&
          FOR_MEMBERS.has(e.detailType) &&
          (e.eventBusName === undefined || e.eventBusName === centralBus),
      );
      const buses = forMembers.length > 0 ? await fanout.list() : [];
      // The central bus first: what the home account's own rules see never waits on the fan-out.
      await inner.publish([
        ...events,
        ...buses.flatMap((bus) => forMembers.map((e) => ({ ...e, eventBusName: bus }))),
      ]);
    },
  };
}
