// A process that accepts events on two local buses and is then killed (test/unit/local/event-bus-durable.test.ts):
// bus A has a rule with a handler target that never finishes and a target that is bus B; bus B's handler takes
// even-numbered events (appending them to taken.log) and never finishes odd ones. Once every publish() has
// returned and B took the even ones, it prints "accepted <n>" and waits to be killed.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventBusRegistry, LocalEventBus } from '#local/event-bus.ts';

export const ACCOUNT = '111111111111';
export const REGION = 'eu-west-1';
export const PATTERN = { source: ['stemcell.test'] };

export function buses(dir: string): { a: LocalEventBus; b: LocalEventBus } {
  const registry = new EventBusRegistry();
  const options = { accountId: ACCOUNT, region: REGION, registry, retry: { maxAttempts: 1 } };
  return {
    a: new LocalEventBus(dir, { ...options, name: 'a' }),
    b: new LocalEventBus(dir, { ...options, name: 'b' }),
  };
}

const never = () => new Promise<void>(() => {});

if (import.meta.main) {
  const [dir, count] = process.argv.slice(2) as [string, string];
  const { a, b } = buses(dir);
  let took = 0;
  a.addRule('to-handler', PATTERN, { id: 'slow', handler: never });
  a.addRule('to-bus', PATTERN, b);
  b.addRule('taker', PATTERN, {
    id: 'taker',
    handler: async (event) => {
      const n = (event.detail as { n: number }).n;
      if (n % 2 === 1) return never();
      appendFileSync(join(dir, 'taken.log'), `${n}\n`);
      took++;
    },
  });
  for (let n = 0; n < Number(count); n++)
    await a.publish([{ source: 'stemcell.test', detailType: 'Test', detail: { n } }]);
  while (took < Math.ceil(Number(count) / 2)) await new Promise((r) => setTimeout(r, 5));
  process.stdout.write(`accepted ${count}\n`);
  await never();
}
