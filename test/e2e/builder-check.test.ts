// The builder's declared packages are enough: a clean Debian (mmdebstrap minbase, the machine's own apt
// sources) with exactly the packages of infra/builder/packages.list — what infra/builder/bootstrap.sh installs
// on Debian's official AMI — passes `stemcell builder --check`, run inside it. And the check is not a
// formality: the same tree without one package fails it and names that package.
// The tree is cached under /var/cache/stemcell-test (STEMCELL_TEST_CACHE), keyed by the list and the suite,
// built in a temporary directory and renamed into place. The checkout is bind-mounted read-only into the
// tree inside a private mount namespace (unshare), so no mount can outlive the test.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { builderRequirements, onPath, PACKAGES_LIST } from '#builder/requirements.ts';
import { DEBIAN_CACHE_ROOT, DEBIAN_RECIPE, run, withLock } from '#test/support/debian.ts';

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
const skip =
  process.getuid?.() !== 0
    ? 'needs root (mmdebstrap, chroot)'
    : !onPath('mmdebstrap') || !onPath('unshare')
      ? 'needs mmdebstrap and unshare (scripts/setup.sh installs them)'
      : false;

function packages(): string[] {
  return [...new Set(builderRequirements().map((r) => r.package))];
}

/** A minbase Debian with the builder's packages, built once per list and suite. */
async function builderTree(): Promise<string> {
  const key = createHash('sha256')
    .update(readFileSync(PACKAGES_LIST))
    .update(DEBIAN_RECIPE.suite)
    .digest('hex')
    .slice(0, 16);
  const dir = join(DEBIAN_CACHE_ROOT, `builder-${key}`);
  if (existsSync(join(dir, 'complete'))) return join(dir, 'root');
  return withLock(`${dir}.lock`, async () => {
    if (existsSync(join(dir, 'complete'))) return join(dir, 'root');
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      const foreign = [...new Set(packages().flatMap((p) => (p.includes(':') ? [p.split(':')[1]] : [])))];
      await run('mmdebstrap', [
        '--mode=root',
        '--variant=minbase',
        ...(foreign.length ? [`--architectures=${['amd64', ...foreign].join(',')}`] : []),
        `--include=${packages().join(',')}`,
        DEBIAN_RECIPE.suite,
        join(tmp, 'root'),
      ]);
      await writeFile(join(tmp, 'complete'), `${new Date().toISOString()}\n`);
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return join(dir, 'root');
  });
}

/** `stemcell builder --check` inside the tree: the checkout bind-mounted at /opt/stemcell, in its own namespace. */
function checkInside(tree: string, hide: string[] = []): Promise<{ code: number | null; out: string }> {
  const script = [
    'set -e',
    'mkdir -p "$1/opt/stemcell"',
    'mount --bind -o ro "$2" "$1/opt/stemcell"',
    'mount -t proc proc "$1/proc"',
    // Hiding a file of the tree, for the negative case: an empty file over it, in this namespace only.
    'shift 2; for f in "$@"; do mount --bind /dev/null "$ROOTFS$f"; done',
    'exec chroot "$ROOTFS" /opt/stemcell/bin/stemcell builder --check',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', tree, ROOT, ...hide],
      { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ROOTFS: tree, NODE_COMPILE_CACHE: '/tmp/ncc' } },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('E2E: the builder on a clean Debian with its declared packages', { skip }, () => {
  it('passes `stemcell builder --check` inside a fresh mmdebstrap tree of infra/builder/packages.list', async () => {
    // prepare
    const tree = await builderTree();
    // act
    const { code, out } = await checkInside(tree);
    // assess
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`all ${builderRequirements().length} tools and directories present`));
  });

  it('fails inside the same tree when a tool the code calls is gone, naming its package', async () => {
    const tree = await builderTree();
    // sgdisk hidden: an empty, non-executable file in its place.
    const { code, out } = await checkInside(tree, ['/usr/sbin/sgdisk']);
    assert.notEqual(code, 0, out);
    assert.match(out, /missing sgdisk \(gdisk\)/);
    assert.match(out, /install: gdisk/);
  });
});
