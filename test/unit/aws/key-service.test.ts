import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateGrantCommand, DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { KmsKeyService } from '#aws/key-service.ts';

const kms = () =>
  new KMSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

describe('Class: KmsKeyService', () => {
  it('asks for an AES-256 data key under the encryption context', async () => {
    const client = kms();
    const mock = mockClient(client);
    mock
      .on(GenerateDataKeyCommand)
      .resolves({ Plaintext: new Uint8Array([1]), CiphertextBlob: new Uint8Array([2]) });
    const key = await new KmsKeyService({ client }).generateDataKey('alias/stemcell', { stream: 'web' });
    assert.deepEqual(key, { plaintext: Buffer.from([1]), ciphertext: Buffer.from([2]) });
    assert.deepEqual(mock.commandCalls(GenerateDataKeyCommand)[0]?.args[0].input, {
      KeyId: 'alias/stemcell',
      KeySpec: 'AES_256',
      EncryptionContext: { stream: 'web' },
    });
  });

  it('decrypts with the credentials of the calling account', async () => {
    // prepare
    const own = kms();
    const other = kms();
    mockClient(own)
      .on(DecryptCommand)
      .resolves({ Plaintext: new Uint8Array([9]) });
    const otherMock = mockClient(other);
    otherMock.on(DecryptCommand).resolves({ Plaintext: new Uint8Array([7]) });
    const service = new KmsKeyService({
      client: own,
      clientForAccount: (id) => (id === '222222222222' ? other : own),
    });
    // act
    const out = await service.decrypt(Buffer.from([1]), { stream: 'web' }, '222222222222');
    // assess
    assert.deepEqual(out, Buffer.from([7]));
    assert.deepEqual(otherMock.commandCalls(DecryptCommand)[0]?.args[0].input, {
      CiphertextBlob: Buffer.from([1]),
      EncryptionContext: { stream: 'web' },
    });
  });

  it('creates a grant for the grantee with the listed operations', async () => {
    const client = kms();
    const mock = mockClient(client);
    mock.on(CreateGrantCommand).resolves({ GrantId: 'g1' });
    const out = await new KmsKeyService({ client }).createGrant('k', 'arn:aws:iam::2:role/r', ['Decrypt']);
    assert.deepEqual(out, { grantId: 'g1' });
    assert.deepEqual(mock.commandCalls(CreateGrantCommand)[0]?.args[0].input, {
      KeyId: 'k',
      GranteePrincipal: 'arn:aws:iam::2:role/r',
      Operations: ['Decrypt'],
    });
  });
});
