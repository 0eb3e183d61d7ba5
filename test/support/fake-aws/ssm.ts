// Stateful fake of SSM parameters.
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError } from './common.ts';

export class FakeSsm {
  readonly parameters = new Map<string, string>();

  client(): SSMClient {
    const client = new SSMClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    mockClient(client)
      .on(PutParameterCommand)
      .callsFake((input) => {
        if (input.DataType === 'aws:ec2:image' && !/^ami-[0-9a-f]+$/.test(input.Value)) {
          throw awsError('ValidationException', `${input.Value} is not an AMI id`);
        }
        if (this.parameters.has(input.Name) && !input.Overwrite) throw awsError('ParameterAlreadyExists');
        this.parameters.set(input.Name, input.Value);
        return { Version: 1 };
      });
    return client;
  }
}
