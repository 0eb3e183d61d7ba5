#!/usr/bin/env bash
# One idempotent setup for a fresh machine: the system tools stemcell drives (through apt) and the
# project's Node packages, which include the Node.js binary that matches the Lambda runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

# The builder's packages (infra/builder/packages.list, shared with infra/builder/bootstrap.sh and checked by
# `stemcell builder --check`): a package is installed when a command or path it provides is missing.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
foreign=()
while read -r pkg needs; do
  # package:arch (another architecture's GRUB modules): that architecture must be known to dpkg.
  [ "${pkg#*:}" = "$pkg" ] || foreign+=("${pkg#*:}")
  for need in $needs; do
    if [ "${need#/}" != "$need" ]; then [ -e "$need" ] || { missing+=("$pkg"); break; }
    else command -v "$need" >/dev/null 2>&1 || { missing+=("$pkg"); break; }; fi
  done
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' infra/builder/packages.list)

# What only this machine needs beyond a builder (tests, benchmarks, local boots) — tool:package, a tool
# missing from PATH pulls its Debian package.
tools=(
  debugfs:e2fsprogs chattr:e2fsprogs rsync:rsync
  qemu-system-x86_64:qemu-system-x86
  debootstrap:debootstrap mmdebstrap:mmdebstrap pzstd:zstd git:git
  java:default-jre-headless
  chromium:chromium
)
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (a second checkout setting up beside this one) instead of failing on its lock.
  apt_opts=(-o DPkg::Lock::Timeout=900)
  for arch in "${foreign[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || "${sudo_cmd[@]}" dpkg --add-architecture "$arch"
  done
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
