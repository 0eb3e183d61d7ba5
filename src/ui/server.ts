// The live status page's server (node:http, no framework): GET / (the page), /api/state (JSON), /api/events
// (server-sent events: the state again whenever it changed), /boot-log (a region's boot-check console log).
// Read-only: any other method is 405. Bound to loopback unless the caller allows otherwise, and it answers
// only requests whose Host header names it, so a web page elsewhere cannot read it through DNS rebinding.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PAGE_HTML } from './page.ts';
import type { PageState } from './state.ts';

export interface StatusServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The page's state; `allAccounts` lists every account's cell (the page's ?accounts=all). */
  state: (options?: { allAccounts?: boolean }) => Promise<PageState>;
  /** Path of the boot-check console log of a release's region, if one was recorded. */
  bootLogPath?: (releaseId: string, region: string) => Promise<string | undefined>;
  /** How often the state is re-read for the live stream. @defaultValue 500 */
  intervalMs?: number;
  /** Allow a host that is not loopback. @defaultValue false */
  allowRemote?: boolean;
}

export interface StatusServer {
  url: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Parses `127.0.0.1:8080` / `8080` / `[::1]:8080`. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`not host:port or port: ${JSON.stringify(value)} (e.g. 127.0.0.1:8080)`);
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  if (!LOOPBACK.has(options.host) && !options.allowRemote)
    throw new Error(
      `the status page listens on loopback only; ${options.host} is not (127.0.0.1, ::1, localhost)`,
    );
  /** Each live client with the last state it was sent, and whether it asked for every account. */
  const clients = new Map<ServerResponse, { sent: string; all: boolean }>();
  const stateFor = (url: URL) =>
    options.state(url.searchParams.get('accounts') === 'all' ? { allAccounts: true } : {});
  let allowedHosts = new Set<string>();

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!options.allowRemote && !allowedHosts.has(req.headers.host ?? '')) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('unknown host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('read-only\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const common = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    switch (url.pathname) {
      case '/':
        res.writeHead(200, {
          ...common,
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        });
        res.end(PAGE_HTML);
        return;
      case '/api/state': {
        const body = JSON.stringify(await stateFor(url));
        res.writeHead(200, { ...common, 'content-type': 'application/json' }).end(body);
        return;
      }
      case '/api/events': {
        res.writeHead(200, { ...common, 'content-type': 'text/event-stream', connection: 'keep-alive' });
        const { generatedAt, ...rest } = await stateFor(url);
        res.write(`retry: 1000\ndata: ${JSON.stringify({ generatedAt, ...rest })}\n\n`);
        clients.set(res, { sent: JSON.stringify(rest), all: url.searchParams.get('accounts') === 'all' });
        req.on('close', () => clients.delete(res));
        return;
      }
      case '/boot-log': {
        const path = await options.bootLogPath?.(
          url.searchParams.get('release') ?? '',
          url.searchParams.get('region') ?? '',
        );
        if (!path) {
          res.writeHead(404, { ...common, 'content-type': 'text/plain' }).end('no boot-check log recorded\n');
          return;
        }
        res
          .writeHead(200, { ...common, 'content-type': 'text/plain; charset=utf-8' })
          .end(await readFile(path));
        return;
      }
      default:
        res.writeHead(404, { ...common, 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const hostPart = options.host.includes(':') ? `[${options.host}]` : options.host;
  allowedHosts = new Set([`${hostPart}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);

  let closed = false;
  const tick = async () => {
    while (!closed) {
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 500));
      if (closed || clients.size === 0) continue;
      try {
        // Sent again only when something other than the time it was read changed: a page of 10,000 accounts
        // is not redrawn twice a second for nothing.
        const bodies = new Map<boolean, { body: string; key: string }>();
        for (const [client, { sent, all }] of clients) {
          let next = bodies.get(all);
          if (next === undefined) {
            const { generatedAt: _, ...rest } = await options.state(all ? { allAccounts: true } : {});
            next = { body: JSON.stringify({ generatedAt: _, ...rest }), key: JSON.stringify(rest) };
            bodies.set(all, next);
          }
          if (sent === next.key) continue;
          client.write(`data: ${next.body}\n\n`);
          clients.set(client, { sent: next.key, all });
        }
      } catch {
        // A state read that failed (a file being replaced) is retried on the next tick.
      }
    }
  };
  const ticking = tick();

  return {
    url: `http://${hostPart}:${port}/`,
    async close() {
      closed = true;
      for (const client of clients.keys()) client.end();
      clients.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await ticking;
    },
  };
}
