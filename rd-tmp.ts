import { createReadStream } from 'node:fs';
import { ByteSource } from '#unpack/byte-source.ts';
import { TarReader } from '#unpack/tar-reader.ts';
import { DEFAULT_LIMITS } from '#unpack/limits.ts';
const t = performance.now();
const src = new ByteSource(createReadStream(process.argv[2]!), DEFAULT_LIMITS);
await src.open();
const r = new TarReader(src, DEFAULT_LIMITS);
let n = 0;
for (;;) { const e = await r.next(); if (!e) break; n++; if (process.argv[3] && e.size) { for (let o = 0; o < e.size; o += 65536) await r.readBody(Math.min(65536, e.size - o)); } }
await src.finish();
console.log(n, performance.now() - t, process.resourceUsage().maxRSS/1024|0);
