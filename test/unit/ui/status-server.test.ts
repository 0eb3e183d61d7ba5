// The status page server: read-only, loopback by default, answers only requests that name it (no DNS
// rebinding), and streams the state again when it changes.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { parseListen, startStatusServer } from '#ui/server.ts';
import type { PageState } from '#ui/state.ts';

const state = (generatedAt: string): PageState => ({
  generatedAt,
  releases: [],
  pins: [],
  adoption: [],
  adoptionHidden: 0,
});

function get(url: string, options: { method?: string; host?: string } = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('Function: startStatusServer()', () => {
  it('serves the page and the state, refuses writes and foreign Host headers', async () => {
    const server = await startStatusServer({
      host: '127.0.0.1',
      port: 0,
      state: async () => state('2026-01-01T00:00:00.000Z'),
    });
    try {
      const page = await get(server.url);
      assert.equal(page.status, 200);
      assert.match(page.body, /<title>stemcell/);
      const api = await get(`${server.url}api/state`);
      assert.equal(JSON.parse(api.body).generatedAt, '2026-01-01T00:00:00.000Z');
      assert.equal((await get(`${server.url}api/state`, { method: 'POST' })).status, 405);
      assert.equal((await get(`${server.url}api/state`, { host: 'evil.example:80' })).status, 421);
      assert.equal((await get(`${server.url}boot-log?release=x&region=y`)).status, 404);
    } finally {
      await server.close();
    }
  });

  it('listens on loopback only unless told otherwise', async () => {
    await assert.rejects(
      startStatusServer({ host: '0.0.0.0', port: 0, state: async () => state('x') }),
      /loopback only/,
    );
    assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListen('[::1]:8081'), { host: '::1', port: 8081 });
    assert.throws(() => parseListen('nope'), /host:port/);
  });

  it('pushes the state again over server-sent events when it changes', async () => {
    let n = 0;
    const server = await startStatusServer({
      host: '127.0.0.1',
      port: 0,
      intervalMs: 20,
      // Each step changes the state (its adoption count), not only the time it was read.
      state: async () => {
        const step = Math.min(9, Math.floor(n++ / 3));
        return { ...state(`2026-01-01T00:00:0${step}.000Z`), adoptionHidden: step };
      },
    });
    try {
      const seen = await new Promise<string[]>((resolve, reject) => {
        const messages: string[] = [];
        const req = request(`${server.url}api/events`, (res) => {
          res.setEncoding('utf8');
          let buffer = '';
          res.on('data', (chunk: string) => {
            buffer += chunk;
            for (const m of buffer.matchAll(/data: (.*)\n\n/g))
              messages.push(JSON.parse(m[1] ?? '{}').generatedAt);
            buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
            if (new Set(messages).size >= 3) {
              req.destroy();
              resolve(messages);
            }
          });
        });
        req.on('error', (err) => (err.message.includes('aborted') ? undefined : reject(err)));
        req.end();
      });
      assert.ok(new Set(seen).size >= 3, 'several distinct states arrived');
      assert.equal(seen.length, new Set(seen).size, 'an unchanged state is not sent again');
    } finally {
      await server.close();
    }
  });
});
