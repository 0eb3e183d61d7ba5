// `export const handler` of each function: built on the first invocation, from AWS dependencies loaded by a
// dynamic import, so importing a handler module (tests, local runtime) loads no AWS SDK client.
import type { Context } from 'aws-lambda';

export type LambdaHandler<E, R> = (event: E, context: Context) => Promise<R>;

export function lazyHandler<E, R>(build: () => Promise<LambdaHandler<E, R>>): LambdaHandler<E, R> {
  let built: Promise<LambdaHandler<E, R>> | undefined;
  return async (event, context) => {
    if (!built) {
      built = build();
      // A failed cold start (missing environment, unreadable config) is retried on the next invocation.
      built.catch(() => {
        built = undefined;
      });
    }
    return (await built)(event, context);
  };
}
