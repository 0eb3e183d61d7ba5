import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { makeWorkspace } from '#test/support/unpack-harness.ts';

const STEMCELL = join(import.meta.dirname, '../../../bin/stemcell');

describe('Command: stemcell unpack', () => {
  it('applies a tarball from a file and prints the statistics as JSON', () => {
    // prepare
    const ws = makeWorkspace();
    try {
      const tarball = join(ws.dir, 'in.tar');
      writeFileSync(tarball, new TarBuilder().dir('etc').file('etc/hostname', 'cli\n').build());
      // act
      const run = spawnSync(STEMCELL, ['unpack', tarball, ws.root, '--json', '--manifest', ws.manifest], {
        encoding: 'utf8',
      });
      // assess
      assert.equal(run.status, 0, run.stderr);
      const stats = JSON.parse(run.stdout);
      for (const field of [
        'entries',
        'filesWritten',
        'bytesWritten',
        'metadataUpdates',
        'unchanged',
        'removed',
        'durationMs',
        'peakRssBytes',
      ]) {
        assert.equal(typeof stats[field], 'number', field);
      }
      assert.equal(stats.entries, 2);
      assert.equal(readFileSync(join(ws.root, 'etc/hostname'), 'utf8'), 'cli\n');
    } finally {
      ws.cleanup();
    }
  });

  it("reads standard input for '-'", () => {
    // prepare
    const ws = makeWorkspace();
    try {
      // act
      const run = spawnSync(STEMCELL, ['unpack', '-', ws.root], {
        input: new TarBuilder().file('x', 'stdin').build(),
      });
      // assess
      assert.equal(run.status, 0, run.stderr.toString());
      assert.equal(readFileSync(join(ws.root, 'x'), 'utf8'), 'stdin');
    } finally {
      ws.cleanup();
    }
  });

  it('exits 2 with "rejected: <entry>: <reason>" on stderr for a hostile archive', () => {
    // prepare
    const ws = makeWorkspace();
    try {
      // act
      const run = spawnSync(STEMCELL, ['unpack', '-', ws.root], {
        input: new TarBuilder().file('../x', 'evil').build(),
      });
      // assess
      assert.equal(run.status, 2);
      assert.equal(run.stderr.toString(), "rejected: ../x: path contains a '..' component\n");
    } finally {
      ws.cleanup();
    }
  });

  it('passes --trust-mtime through: a same-size, same-mtime file is not read again', () => {
    // prepare
    const ws = makeWorkspace();
    try {
      const args = ['unpack', '-', ws.root, '--manifest', ws.manifest, '--json', '--trust-mtime'];
      spawnSync(STEMCELL, args, { input: new TarBuilder().file('a', 'one').build() });
      // act
      const run = spawnSync(STEMCELL, args, {
        input: new TarBuilder().file('a', 'ONE').build(),
        encoding: 'utf8',
      });
      // assess
      assert.equal(run.status, 0, run.stderr);
      assert.equal(JSON.parse(run.stdout).unchanged, 1);
      assert.equal(readFileSync(join(ws.root, 'a'), 'utf8'), 'one');
    } finally {
      ws.cleanup();
    }
  });

  it('honours limit flags', () => {
    // prepare
    const ws = makeWorkspace();
    try {
      const archive = new TarBuilder().file('a', '1').file('b', '2').file('c', '3').build();
      // act
      const run = spawnSync(STEMCELL, ['unpack', '-', ws.root, '--max-entries', '2'], { input: archive });
      // assess
      assert.equal(run.status, 2);
      assert.match(run.stderr.toString(), /^rejected: c: archive has more than 2 entries/);
    } finally {
      ws.cleanup();
    }
  });

  it('exits 1 on other errors, naming the input', () => {
    const ws = makeWorkspace();
    try {
      const run = spawnSync(STEMCELL, ['unpack', join(ws.dir, 'missing.tar'), ws.root], { encoding: 'utf8' });
      assert.equal(run.status, 1);
      assert.match(run.stderr, /missing\.tar/);
    } finally {
      ws.cleanup();
    }
  });
});
