// The configuration and event reference pages are generated from the zod schemas; a schema changed without
// `npm run docs:reference` leaves a page that says something the code no longer does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PAGES, rows } from '../../../scripts/reference-docs.ts';

describe('generated reference pages', () => {
  for (const [path, page] of Object.entries(PAGES)) {
    it(`${path} is current with its schema (npm run docs:reference)`, () => {
      const onDisk = readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
      assert.equal(onDisk, page());
    });
  }

  it('flattens nested fields, maps and lists, keeping which are required and their descriptions', () => {
    const listed = rows({
      type: 'object',
      required: ['streams'],
      properties: {
        streams: {
          type: 'object',
          propertyNames: { type: 'string', pattern: '^[a-z]+$' },
          additionalProperties: {
            type: 'object',
            required: ['regions'],
            properties: { regions: { type: 'array', items: { type: 'string' }, description: 'where' } },
          },
        },
      },
    });
    assert.deepEqual(
      listed.map((r) => [r.path, r.type, r.required, r.description]),
      [
        ['streams', 'map', true, ''],
        ['streams.<name>.regions', 'string[]', true, 'where'],
      ],
    );
  });
});
