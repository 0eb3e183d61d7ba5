import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { InputError } from '#errors';
import { isPemText, StemcellConfig } from './schema.ts';

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
  const unreadable = inlineKeyFiles(raw, dirname(file));
  const result = StemcellConfig.safeParse(raw);
  if (result.success && unreadable.length === 0) return result.data;
  // Every problem at once; a key file that could not be read is not also reported as a bad key.
  const said = new Set(unreadable.map((p) => p.slice(0, p.indexOf(': '))));
  const problems = result.success ? [] : describeIssues(result.error);
  throw new ConfigError(file, [
    ...unreadable,
    ...problems.filter((p) => !said.has(p.slice(0, p.indexOf(': ')))),
  ]);
}

/**
 * Replaces each trusted key given as a path (streams.<name>.provenance.trustedKeys) with the PEM it holds, read
 * relative to the configuration file; returns one problem per file that cannot be read. What the file holds is
 * checked by the schema, like an inline key.
 */
function inlineKeyFiles(raw: unknown, base: string): string[] {
  const problems: string[] = [];
  const streams = (raw as { streams?: unknown } | null)?.streams;
  if (!streams || typeof streams !== 'object') return problems;
  for (const [name, stream] of Object.entries(streams as Record<string, unknown>)) {
    const keys = (stream as { provenance?: { trustedKeys?: unknown } } | null)?.provenance?.trustedKeys;
    if (!Array.isArray(keys)) continue;
    keys.forEach((key, i) => {
      if (typeof key !== 'string' || key.startsWith('arn:') || isPemText(key)) return;
      const where = `streams.${name}.provenance.trustedKeys[${i}]`;
      try {
        const text = readFileSync(resolve(base, key), 'utf8');
        if (isPemText(text)) keys[i] = text;
        else problems.push(`${where}: ${key} holds no PEM public key`);
      } catch (err) {
        problems.push(
          `${where}: cannot read ${key}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
    });
  }
  return problems;
}
