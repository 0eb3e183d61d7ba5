// Fixture trees for the unpacker tests, built from real files so GNU tar can archive them.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, lchownSync, linkSync, lutimesSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const T0 = 1_700_000_000;

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A tree with every kind of entry and metadata a root filesystem holds. */
export function buildRichTree(src: string): void {
  const p = (rel: string) => join(src, rel);
  for (const d of ['usr/bin', 'usr/share/zoneinfo', 'etc', 'tmp', 'srv/shared', 'dev', 'opt/deep'])
    mkdirSync(p(d), { recursive: true });
  writeFileSync(p('usr/share/zoneinfo/UTC'), 'TZif2 fake\n');
  writeFileSync(p('etc/hostname'), 'stemcell\n');
  writeFileSync(p('etc/empty'), '');
  writeFileSync(p('etc/shadow'), 'root:*:19000:0:99999:7:::\n');
  chmodSync(p('etc/shadow'), 0o000);
  writeFileSync(p('usr/bin/medium'), randomBytes(200 * 1024));
  writeFileSync(p('usr/bin/large'), randomBytes(3 * 1024 * 1024 + 123));
  writeFileSync(p('usr/bin/su'), 'setuid binary\n');
  writeFileSync(p('usr/bin/wall'), 'setgid binary\n');
  writeFileSync(p('usr/bin/ping'), 'capable binary\n');
  writeFileSync(p('srv/shared/owned'), 'owned by someone else\n');
  lchownSync(p('srv/shared/owned'), 1234, 5678);
  lchownSync(p('srv/shared'), 1234, 5678);
  lchownSync(p('usr/bin/wall'), 0, 5);
  chmodSync(p('usr/bin/su'), 0o4755);
  chmodSync(p('usr/bin/wall'), 0o2755);
  chmodSync(p('tmp'), 0o1777);
  chmodSync(p('srv/shared'), 0o2775);
  chmodSync(p('opt/deep'), 0o700);
  // Names GNU tar needs extended headers for, and the Unicode / backslash variants of one name.
  const longDir = `opt/deep/${'d'.repeat(90)}/${'e'.repeat(90)}`;
  mkdirSync(p(longDir), { recursive: true });
  writeFileSync(p(`${longDir}/${'f'.repeat(150)}`), 'long name\n');
  writeFileSync(p('opt/caf\u00e9'), 'nfc\n');
  writeFileSync(p('opt/cafe\u0301'), 'nfd\n');
  writeFileSync(p('opt/back\\slash'), 'backslash\n');
  writeFileSync(p('opt/with space'), 'space\n');
  symlinkSync('/usr/share/zoneinfo/UTC', p('etc/localtime'));
  symlinkSync('usr/bin', p('bin'));
  symlinkSync('../nowhere/at/all', p('opt/dangling'));
  symlinkSync('hostname', p('etc/owned-link'));
  lchownSync(p('etc/owned-link'), 42, 43);
  linkSync(p('usr/bin/medium'), p('usr/bin/medium-2'));
  linkSync(p('usr/bin/medium'), p('opt/medium-3'));
  sh('mknod', ['-m', '666', p('dev/null'), 'c', '1', '3']);
  sh('mknod', ['-m', '660', p('dev/loop0'), 'b', '7', '0']);
  sh('mknod', ['-m', '600', p('dev/initctl'), 'p']);
  lchownSync(p('dev/loop0'), 0, 6);
  sh('setfattr', ['-n', 'user.comment', '-v', 'hello', p('etc/hostname')]);
  sh('setfattr', ['-n', 'user.empty', p('etc/hostname')]);
  sh('setfattr', [
    '-n',
    'security.capability',
    '-v',
    '0x0100000200200000000000000000000000000000',
    p('usr/bin/ping'),
  ]);
  sh('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p('srv/shared')]);
  sh('setfattr', ['-n', 'user.dir', '-v', '0sAAEC/w==', p('opt')]);
  sh('setfattr', ['-n', 'security.selinux', '-v', 'system_u:object_r:etc_t:s0', p('etc/empty')]);
  // Distinct mtimes everywhere, symlinks included; directories last (their children changed them).
  execFileSync('find', [src, '-depth', '-exec', 'touch', '-h', '-d', '@1700000000', '{}', '+']);
  lutimesSync(p('etc/hostname'), T0 + 5, T0 + 5);
  lutimesSync(p('etc/localtime'), T0 + 7, T0 + 7);
  lutimesSync(p('usr/bin'), T0 - 86400, T0 - 86400);
}
