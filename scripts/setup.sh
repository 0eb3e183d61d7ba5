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
  qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm
  debootstrap:debootstrap mmdebstrap:mmdebstrap pzstd:zstd git:git dpkg-deb:dpkg
  java:default-jre-headless
  chromium:chromium
)
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# Firmware the boot check runs images under: OVMF (x86_64 UEFI) and AAVMF (arm64 UEFI); SeaBIOS comes with qemu.
[ -f /usr/share/OVMF/OVMF_CODE.fd ] || missing+=(ovmf)
[ -f /usr/share/AAVMF/AAVMF_CODE.fd ] || missing+=(qemu-efi-aarch64)
# Python with pip: the CloudFormation linter and the AWS emulator below are Python packages.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
# Wait for another apt/dpkg run (a second checkout setting up beside this one) instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=900)
# Another architecture's packages (grub-efi-arm64-bin:arm64 in the list; the demo's arm64 kernel and busybox,
# which src/demo/debian-packages.ts downloads and unpacks, never installs): dpkg must know that architecture,
# even when every package is already there.
added_arch=
for arch in arm64 "${foreign[@]}"; do
  dpkg --print-foreign-architectures | grep -qx "$arch" && continue
  echo "setup: adding the $arch package architecture"
  "${sudo_cmd[@]}" dpkg --add-architecture "$arch"
  added_arch=1
done
[ -z "$added_arch" ] || "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
  "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python tools the tests run, pinned so that every machine lints and emulates alike: AWS's CloudFormation
# linter (test/support/cfn-lint.ts) and moto's server (the AWS emulator). Installed with pip where missing or at
# another version; a machine that already has them is left alone.
python_tools=(cfn-lint==1.51.0 'moto[server]==5.2.1')
pip_missing=()
for req in "${python_tools[@]}"; do
  name=${req%%[[=]*}
  have=$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  [ "$have" = "${req##*==}" ] || pip_missing+=("$req")
done
# moto's server extra (Flask) is what moto_server needs beyond moto itself.
python3 -c 'import moto.server' >/dev/null 2>&1 || [[ " ${pip_missing[*]} " == *" moto["* ]] || pip_missing+=('moto[server]==5.2.1')
if [ "${#pip_missing[@]}" -gt 0 ]; then
  echo "setup: installing Python packages: ${pip_missing[*]}"
  # A distribution's own Python refuses pip outside a virtualenv (PEP 668): then into the user's site.
  python3 -m pip install --quiet "${pip_missing[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "${pip_missing[@]}"
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
