// The AWS wiring of one Lambda container: its runtime (aws/runtime.ts, the one shape of src/core/runtime.ts over
// the AWS adapters), made at the first invocation. Only the exported `handler` of each function reaches this
// module (lazily), so tests and the local runtime never touch AWS. The parts:
//   aws/container.ts  the environment (env.ts, parsed once), the SDK clients, the config, the account id
//   aws/services.ts   the AWS adapters the dependencies are made of
//   aws/runtime.ts    what each function, the builder and the operator's commands get (AwsRuntime, and
//                     AwsMemberRuntime for the subscriber in a member account)
import { AwsContainer } from './aws/container.ts';
import { AwsMemberRuntime, AwsRuntime } from './aws/runtime.ts';

let container: AwsContainer | undefined;
let runtime: AwsRuntime | undefined;
let memberRuntime: AwsMemberRuntime | undefined;

/** The management account's runtime of this container. */
export function awsRuntime(): AwsRuntime {
  container ??= new AwsContainer();
  runtime ??= new AwsRuntime(container);
  return runtime;
}

/** A member account's runtime of this container (the subscriber). */
export function awsMemberRuntime(): AwsMemberRuntime {
  container ??= new AwsContainer();
  memberRuntime ??= new AwsMemberRuntime(container);
  return memberRuntime;
}
