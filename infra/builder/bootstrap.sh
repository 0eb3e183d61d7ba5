#!/bin/bash
# Bootstrap of a stemcell builder instance (called by the user data of infra/region.yml's launch template,
# after it unpacked the builder package into /opt/stemcell). IMDSv2 only, no SSH: the security group has no
# inbound rule and nothing here opens one. Logs go to CloudWatch through the CloudWatch agent.
set -euo pipefail

: "${STEMCELL_HOME_REGION:?}" "${STEMCELL_BUS_NAME:?}" "${STEMCELL_BUILD_QUEUE_URL:?}"
: "${STEMCELL_LOG_GROUP:?}" "${STEMCELL_KMS_KEY_ID:?}" "${STEMCELL_TABLE:?}" "${STEMCELL_BUCKET:?}"
: "${STEMCELL_AVAILABILITY_ZONE:?}"

# Tools the agent's volume and boot steps call (Amazon Linux 2023 package names).
dnf install -y --setopt=install_weak_deps=False \
  amazon-cloudwatch-agent e2fsprogs util-linux parted dosfstools grub2-tools zstd xz nvme-cli

# The agent reads its region and instance id from IMDSv2 itself; this is only what it cannot discover.
install -d -m 0755 /etc/stemcell /var/log/stemcell
cat >/etc/stemcell/builder.env <<ENV
STEMCELL_HOME_REGION=${STEMCELL_HOME_REGION}
STEMCELL_BUS_NAME=${STEMCELL_BUS_NAME}
STEMCELL_BUILD_QUEUE_URL=${STEMCELL_BUILD_QUEUE_URL}
STEMCELL_KMS_KEY_ID=${STEMCELL_KMS_KEY_ID}
STEMCELL_TABLE=${STEMCELL_TABLE}
STEMCELL_BUCKET=${STEMCELL_BUCKET}
STEMCELL_AVAILABILITY_ZONE=${STEMCELL_AVAILABILITY_ZONE}
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
