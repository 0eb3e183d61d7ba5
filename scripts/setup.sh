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
  qemu-system-aarch64:qemu-system-arm busybox:busybox-static dpkg-deb:dpkg
  java:default-jre-headless
)
missing=()
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# GRUB's module directories are data, not tools on PATH.
[ -d /usr/lib/grub/i386-pc ] || missing+=(grub-pc-bin)
[ -d /usr/lib/grub/x86_64-efi ] || missing+=(grub-efi-amd64-bin)
# Firmware the boot check runs images under: OVMF (x86_64 UEFI) and AAVMF (arm64 UEFI); SeaBIOS comes with qemu.
[ -f /usr/share/OVMF/OVMF_CODE.fd ] || missing+=(ovmf)
[ -f /usr/share/AAVMF/AAVMF_CODE.fd ] || missing+=(qemu-efi-aarch64)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (a second checkout setting up beside this one) instead of failing on its lock.
  apt_opts=(-o DPkg::Lock::Timeout=900)
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# arm64 from an x86_64 machine: Debian's grub-efi-arm64-bin, kernel and busybox are arm64 packages, so apt
# learns the arm64 architecture and they are downloaded and unpacked with dpkg-deb, never installed (nothing
# of arm64 runs here). GRUB's arm64-efi modules go to the directory the builder looks in (README: arm64).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 package architecture (download only)"
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq
fi
grub_arm64=/var/cache/stemcell/grub-arm64
if [ ! -f "$grub_arm64/usr/lib/grub/arm64-efi/linux.mod" ]; then
  echo "setup: fetching GRUB arm64-efi modules into $grub_arm64"
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  ( cd "$tmp" && apt-get download -qq grub-efi-arm64-bin:arm64 )
  "${sudo_cmd[@]}" mkdir -p "$grub_arm64.tmp"
  "${sudo_cmd[@]}" dpkg-deb -x "$tmp"/grub-efi-arm64-bin_*.deb "$grub_arm64.tmp"
  "${sudo_cmd[@]}" rm -rf "$grub_arm64" && "${sudo_cmd[@]}" mv "$grub_arm64.tmp" "$grub_arm64"
  rm -rf "$tmp"
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
