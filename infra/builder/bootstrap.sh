#!/bin/bash
# Bootstrap of a stemcell builder instance on Debian's official AMI (called by the user data of
# infra/region.yml's launch template, after it unpacked the builder package into /opt/stemcell). Installs
# exactly the packages of infra/builder/packages.list — the list scripts/setup.sh installs on the machines
# that test the builder — verifies them with `stemcell builder --check`, and only then starts the agent.
# IMDSv2 only, no SSH: the security group has no inbound rule and nothing here opens one. Logs go to
# CloudWatch through the CloudWatch agent.
set -euo pipefail

: "${STEMCELL_HOME_REGION:?}" "${STEMCELL_BUS_NAME:?}" "${STEMCELL_BUILD_QUEUE_URL:?}"
: "${STEMCELL_LOG_GROUP:?}" "${STEMCELL_KMS_KEY_ID:?}" "${STEMCELL_TABLE:?}" "${STEMCELL_BUCKET:?}"
: "${STEMCELL_REGION:?}"

export DEBIAN_FRONTEND=noninteractive
list=/opt/stemcell/infra/builder/packages.list
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | awk '{print $1}')
# package:arch (another architecture's GRUB modules) needs that architecture known to dpkg.
for pkg in "${packages[@]}"; do
  [ "${pkg#*:}" = "$pkg" ] || dpkg --add-architecture "${pkg#*:}"
done
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${packages[@]}" curl ca-certificates

# The CloudWatch agent is not a Debian package: AWS publishes its .deb in a bucket of each region.
arch=$(dpkg --print-architecture)
curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb \
  "https://amazoncloudwatch-agent-${STEMCELL_REGION}.s3.${STEMCELL_REGION}.amazonaws.com/debian/${arch}/latest/amazon-cloudwatch-agent.deb"
dpkg -i /tmp/amazon-cloudwatch-agent.deb
rm -f /tmp/amazon-cloudwatch-agent.deb

# Every tool and GRUB directory the builder code calls, or no agent: a wrong image fails here, loudly.
/opt/stemcell/bin/stemcell builder --check

# The agent reads its region and instance id from IMDSv2 itself; this is only what it cannot discover.
install -d -m 0755 /etc/stemcell /var/log/stemcell
cat >/etc/stemcell/builder.env <<ENV
STEMCELL_HOME_REGION=${STEMCELL_HOME_REGION}
STEMCELL_BUS_NAME=${STEMCELL_BUS_NAME}
STEMCELL_BUILD_QUEUE_URL=${STEMCELL_BUILD_QUEUE_URL}
STEMCELL_KMS_KEY_ID=${STEMCELL_KMS_KEY_ID}
STEMCELL_TABLE=${STEMCELL_TABLE}
STEMCELL_BUCKET=${STEMCELL_BUCKET}
STEMCELL_BUILDER_GROUP=${STEMCELL_BUILDER_GROUP:-}
STEMCELL_LIFECYCLE_HOOK=${STEMCELL_LIFECYCLE_HOOK:-}
STEMCELL_LOG_FILE=/var/log/stemcell/builder.log
AWS_RETRY_MODE=adaptive
ENV

sed "s|\${STEMCELL_LOG_GROUP}|${STEMCELL_LOG_GROUP}|g" /opt/stemcell/infra/builder/cloudwatch-agent.json \
  >/opt/aws/amazon-cloudwatch-agent/etc/stemcell.json
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/stemcell.json

install -m 0644 /opt/stemcell/infra/builder/stemcell-builder.service /etc/systemd/system/stemcell-builder.service
systemctl daemon-reload
systemctl enable --now stemcell-builder.service
