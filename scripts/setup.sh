#!/usr/bin/env bash
# One idempotent setup for a fresh machine: the system tools stemcell drives (through apt) and the
# project's Node packages, which include the Node.js binary that matches the Lambda runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool:package — a tool missing from PATH pulls its Debian package.
tools=(
  mkfs.ext4:e2fsprogs resize2fs:e2fsprogs debugfs:e2fsprogs losetup:mount blkid:util-linux sfdisk:fdisk
  sgdisk:gdisk zstd:zstd xz:xz-utils rsync:rsync getfattr:attr setfattr:attr
  qemu-system-x86_64:qemu-system-x86 grub-mkimage:grub-common
  debootstrap:debootstrap mmdebstrap:mmdebstrap mkfs.vfat:dosfstools mcopy:mtools
  perl:perl-base tar:tar fsfreeze:util-linux chattr:e2fsprogs pzstd:zstd git:git getent:libc-bin
  java:default-jre-headless
  chromium:chromium
)
missing=()
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# GRUB's module directories are data, not tools on PATH.
[ -d /usr/lib/grub/i386-pc ] || missing+=(grub-pc-bin)
[ -d /usr/lib/grub/x86_64-efi ] || missing+=(grub-efi-amd64-bin)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (a second checkout setting up beside this one) instead of failing on its lock.
  apt_opts=(-o DPkg::Lock::Timeout=900)
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm install when the lockfile changed since the last install (or there was none).
stamp=node_modules/.stemcell-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Node packages"
  # npm ci trips over npm 11's lockfile check for optional platform packages; install honours the lock.
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
echo "setup: ready (node $(node_modules/.bin/node --version))"
