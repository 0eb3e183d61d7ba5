// Stateful fake of SSM parameters. Like SSM, an aws:ec2:image value is validated after PutParameter has
// returned: an image the caller cannot describe (see `describableImages`) is never written.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError } from './common.ts';

export class FakeSsm {
  readonly parameters = new Map<string, string>();
  readonly #versions = new Map<string, number>();
  /** Images SSM's asynchronous validation finds; undefined: every well-formed AMI id. */
  describableImages: Set<string> | undefined;

  client(): SSMClient {
    const client = new SSMClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(PutParameterCommand).callsFake((input) => {
      if (input.DataType === 'aws:ec2:image' && !/^ami-[0-9a-f]+$/.test(input.Value)) {
        throw awsError('ValidationException', `${input.Value} is not an AMI id`);
      }
      if (this.parameters.has(input.Name) && !input.Overwrite) throw awsError('ParameterAlreadyExists');
      const version = (this.#versions.get(input.Name) ?? 0) + 1;
      this.#versions.set(input.Name, version);
      const valid = input.DataType !== 'aws:ec2:image' || (this.describableImages?.has(input.Value) ?? true);
      if (valid) this.parameters.set(input.Name, input.Value);
      return { Version: version };
    });
    mock.on(GetParameterCommand).callsFake((input) => {
      const value = this.parameters.get(input.Name);
      if (value === undefined) throw awsError('ParameterNotFound');
      return { Parameter: { Name: input.Name, Value: value, Version: this.#versions.get(input.Name) } };
    });
    return client;
  }
}
