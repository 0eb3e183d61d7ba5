// How local AWS-service stand-ins (object store, snapshots, images) emit the events AWS services deliver to
// EventBridge: the same envelope shape, put on the local bus where rules route them to handlers.

export interface ServiceEventEnvelope {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

export interface ServiceEventSink {
  /** Delivers asynchronously, like EventBridge: the caller never waits for the targets. */
  emit(envelope: ServiceEventEnvelope): void;
}

export function serviceEvent(
  input: Omit<ServiceEventEnvelope, 'version' | 'id' | 'time'> & { time?: string },
): ServiceEventEnvelope {
  return { version: '0', id: crypto.randomUUID(), time: input.time ?? new Date().toISOString(), ...input };
}
