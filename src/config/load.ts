import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { InputError } from '#errors';
import { StemcellConfig } from './schema.ts';

export class ConfigError extends InputError {
  readonly file: string;
  readonly problems: string[];
  constructor(file: string, problems: string[], options?: { cause?: unknown }) {
    super(`${file}: invalid configuration\n${problems.map((p) => `  - ${p}`).join('\n')}`, options);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

/** "streams.web.regions[0]: not a region name such as eu-west-1" — the field path, then what is wrong. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path
      .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
      .join('');
    // A bad record key (a stream name) carries the key's own problem one level down.
    const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
    return `${path || '(top level)'}: ${inner ? `not a valid name: ${inner}` : issue.message}`;
  });
}

export function parseConfig(raw: unknown, file = 'stemcell.config.yml'): StemcellConfig {
  const result = StemcellConfig.safeParse(raw);
  if (!result.success) throw new ConfigError(file, describeIssues(result.error));
  return result.data;
}

export async function loadConfig(file: string): Promise<StemcellConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${(err as Error).message}`], { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message}`], { cause: err });
  }
  return parseConfig(raw, file);
}
