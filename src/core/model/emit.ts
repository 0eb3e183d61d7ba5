// Publishing stemcell's own events: every detail is parsed with its contract schema before it leaves, so a
// producer cannot put on the bus what consumers would reject.
import {
  EVENT_SOURCE,
  parseStemcellDetail,
  type StemcellDetail,
  type StemcellDetailType,
} from '#events/stemcell.ts';
import type { BusEvent, EventPublisher } from '#ports';

export function stemcellEvent<T extends StemcellDetailType>(
  detailType: T,
  detail: StemcellDetail<T>,
  eventBusName: string,
  resources?: string[],
): BusEvent {
  return {
    source: EVENT_SOURCE,
    detailType,
    detail: parseStemcellDetail(detailType, detail),
    eventBusName,
    ...(resources && resources.length > 0 ? { resources } : {}),
  };
}

export async function emit<T extends StemcellDetailType>(
  events: EventPublisher,
  detailType: T,
  detail: StemcellDetail<T>,
  eventBusName: string,
  resources?: string[],
): Promise<void> {
  await events.publish([stemcellEvent(detailType, detail, eventBusName, resources)]);
}
