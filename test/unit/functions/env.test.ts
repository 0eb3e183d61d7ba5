// The functions' environment is one schema (functions/commons/env.ts): every variable their code reads and every
// variable their deployment sets is declared there, and each function's deployment sets what it requires.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { FunctionEnv, REQUIRED } from '#functions/commons/env.ts';
import { loadCfnYaml } from '#test/support/cfn.ts';

const root = resolve(import.meta.dirname, '../../..');
const declared = new Set(Object.keys(FunctionEnv.shape));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** `process.env.NAME` reads, and reads of a parsed environment (`e.NAME`, `env.NAME`), in a source text. */
export function variablesRead(text: string): { direct: string[]; parsed: string[] } {
  const names = (pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1] as string);
  return {
    direct: names(/process\.env(?:\.|\[')([A-Z][A-Z0-9_]*)/g),
    parsed: names(/(?<!process\.)\b(?:e|env)\.([A-Z][A-Z0-9_]+)\b/g),
  };
}

type Environment = { environment?: Record<string, unknown> };
const serverless = loadCfnYaml(join(root, 'serverless.yml')) as unknown as {
  provider: Environment;
  functions: Record<string, Environment>;
};
const member = loadCfnYaml(join(root, 'infra/member.yml'));
const subscriberEnv = Object.keys(
  (member.Resources.SubscriberFunction!.Properties as { Environment: { Variables: Record<string, unknown> } })
    .Environment.Variables,
);

describe('Module: functions/commons/env', () => {
  it('declares every variable the functions read, and no function reads process.env past the schema', () => {
    // act
    const direct: string[] = [];
    const undeclared: string[] = [];
    for (const file of sources('functions')) {
      const read = variablesRead(readFileSync(join(root, file), 'utf8'));
      direct.push(...read.direct.map((name) => `${file}: process.env.${name}`));
      undeclared.push(...read.parsed.filter((n) => !declared.has(n)).map((name) => `${file}: ${name}`));
    }
    // assess
    assert.deepEqual(direct, []);
    assert.deepEqual(undeclared, []);
  });

  it('finds a read it must refuse (the scan is not blind)', () => {
    assert.deepEqual(variablesRead('const a = process.env.NEW_KNOB; const b = e.STEMCELL_TABLE;'), {
      direct: ['NEW_KNOB'],
      parsed: ['STEMCELL_TABLE'],
    });
  });

  it('declares every variable serverless.yml and infra/member.yml set', () => {
    // act
    const set = [
      ...Object.keys(serverless.provider.environment ?? {}),
      ...Object.values(serverless.functions).flatMap((f) => Object.keys(f.environment ?? {})),
      ...subscriberEnv,
    ];
    // assess
    assert.deepEqual(
      set.filter((name) => !declared.has(name)),
      [],
    );
  });

  it("sets, in each function's deployment, every variable the function requires", () => {
    // act
    const provider = Object.keys(serverless.provider.environment ?? {});
    const missing: string[] = [];
    for (const [fn, required] of Object.entries(REQUIRED)) {
      const deployed =
        fn === 'subscriber'
          ? subscriberEnv
          : serverless.functions[fn]
            ? [...provider, ...Object.keys(serverless.functions[fn]?.environment ?? {})]
            : undefined;
      if (!deployed) continue; // not a function of its own: the builder's and the operator's entries
      for (const name of required) if (!deployed.includes(name)) missing.push(`${fn}: ${name}`);
    }
    // assess
    assert.deepEqual(missing, []);
  });
});
