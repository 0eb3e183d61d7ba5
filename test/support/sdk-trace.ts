// Traces every AWS SDK command the code under test sends, whatever client instance it built itself: the
// `send` of each client class is replaced by one that records the command, with the client's region and the
// credentials it signs with, and hands it to a stateful fake (test/support/fake-aws). The role-vs-code test
// turns these traces into IAM requests.

export interface TracedCall {
  /** IAM service prefix: ec2, s3, dynamodb … */
  service: string;
  /** SDK command name without "Command": DescribeImages, Get (lib-dynamodb) … */
  command: string;
  input: Record<string, unknown>;
  region: string;
  /** The access key id the client signs with; the fakes' AssumeRole encodes the role in it. */
  accessKeyId: string;
  /** Whatever the observer attached while the call was made (e.g. the IAM requests, with tags as they were). */
  annotation?: unknown;
}

// biome-ignore lint/suspicious/noExplicitAny: SDK clients of every service
type AnyClient = any;
type ClientClass = { prototype: AnyClient; name: string };

export class SdkTrace {
  readonly calls: TracedCall[] = [];
  readonly #restore: (() => void)[] = [];
  readonly #observe: ((call: TracedCall) => unknown) | undefined;

  /** observe: called before each command reaches its fake, while the state it reads is as the call saw it. */
  constructor(observe?: (call: TracedCall) => unknown) {
    this.#observe = observe;
  }

  /**
   * Every instance of `cls` sends through `fake` (a mocked instance, or one per region), and is traced as
   * `service`.
   */
  route(cls: ClientClass, service: string, fake: AnyClient | ((region: string) => AnyClient)): void {
    const original = Object.getOwnPropertyDescriptor(cls.prototype, 'send');
    const calls = this.calls;
    const observe = this.#observe;
    cls.prototype.send = async function send(this: AnyClient, command: AnyClient, ...rest: unknown[]) {
      const region =
        typeof this.config.region === 'function' ? await this.config.region() : this.config.region;
      const creds =
        typeof this.config.credentials === 'function'
          ? await this.config.credentials()
          : this.config.credentials;
      const call: TracedCall = {
        service,
        command: String(command.constructor.name).replace(/Command$/, ''),
        input: structuredClone(command.input ?? {}),
        region: String(region),
        accessKeyId: String(creds?.accessKeyId ?? ''),
      };
      if (observe) call.annotation = observe(call);
      calls.push(call);
      const target = typeof fake === 'function' ? fake(String(region)) : fake;
      return target.send(command, ...rest);
    };
    this.#restore.push(() => {
      if (original) Object.defineProperty(cls.prototype, 'send', original);
      else delete cls.prototype.send;
    });
  }

  take(): TracedCall[] {
    return this.calls.splice(0, this.calls.length);
  }

  restore(): void {
    for (const undo of this.#restore.splice(0).reverse()) undo();
  }
}
