"""EC2: snapshots, images, launch template versions and smoke-instance consoles as AWS documents them.

- CreateSnapshot copies the volume's key (moto leaves KmsKeyId empty) and, once the snapshot exists with its
  tags, EBS sends "EBS Snapshot Notification" to the account's default bus:
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-cloud-watch-events.html#snapshot-events
- RegisterImage uses the BlockDeviceMappings (the image's root is the given snapshot, encrypted with its key),
  Architecture, BootMode, EnaSupport, ImdsSupport and TagSpecifications; a name already used in the account and
  Region is InvalidAMIName.Duplicate (moto registers a 15 GiB unencrypted placeholder instead):
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RegisterImage.html
  The image becomes available, and EC2 sends "EC2 AMI State Change":
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitor-ami-events.html
- EnableImageDeprecation (not in moto), and DescribeImages' DeprecationTime:
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableImageDeprecation.html
- An image is visible to the accounts its launch permissions name, directly, by Organization or by OU
  (moto shows another account's image to nobody):
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/share-amis-with-organizations-and-OUs.html
- CreateLaunchTemplateVersion starts from SourceVersion's data and is idempotent on ClientToken (moto ignores
  both); DescribeLaunchTemplateVersions pages with NextToken (moto truncates at MaxResults):
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplateVersion.html
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeLaunchTemplateVersions.html
- GetAllowedImagesSettings (not in moto) answers as for an account that never enabled Allowed AMIs, "disabled":
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetAllowedImagesSettings.html
- GetConsoleOutput and DescribeInstanceStatus say how an instance booted; a test sets, per Region and image
  tags, what the console shows and whether the reachability check passes (moto prints one fixed Xen log):
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-system-instance-status-check.html
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .common import emit, now_iso, route, sample

# Boot behaviour: the first rule whose region and image tags match the instance's image decides.
_boot_rules: list[dict[str, Any]] = []
_BOOTED = "\n".join(
    [
        "[    0.000000] Linux version 6.1.0 (debian-kernel@lists.debian.org)",
        "[    1.024000] EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode",
        "[    2.048000] systemd[1]: Reached target multi-user.target",
        "",
        "{hostname} login: ",
        "",
    ]
)
_lt_tokens: dict[tuple[str, str, str], int] = {}
_lt_lock = threading.Lock()


def _boot_rule(instance: Any) -> dict[str, Any] | None:
    backend = instance.ec2_backend
    image = backend.amis.get(instance.image_id)
    tags = image.get_tags() if image is not None else []
    tag_map = {t["key"]: t["value"] for t in tags}
    for rule in _boot_rules:
        if rule.get("region") not in (None, backend.region_name):
            continue
        if all(tag_map.get(k) == v for k, v in (rule.get("imageTags") or {}).items()):
            return rule
    return None


@route("boot")
def _set_boot_rules(body: dict[str, Any], _query: dict[str, str]) -> Any:
    """{rules: [{region?, imageTags?, console, reachability: passed|failed}]}: replaces the rules."""
    _boot_rules[:] = body.get("rules", [])
    return {"rules": len(_boot_rules)}


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError, InvalidParameterValue
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.models.instances import Instance
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore
    from moto.ec2.responses.general import General
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import Base64EncodedString

    # ------------------------------------------------------------------------------------ snapshots
    def create_snapshot(self: Any) -> Any:
        volume_id = self._get_param("VolumeId")
        description = self._get_param("Description")
        tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snapshot = self.ec2_backend.create_snapshot(volume_id, description)
        snapshot.kms_key_id = snapshot.volume.kms_key_id
        snapshot.add_tags(tags)
        region = self.region
        event = sample("ebs-snapshot-notification")
        detail = copy.deepcopy(event["detail"])
        detail.update(
            {
                "snapshot_id": f"arn:aws:ec2::{region}:snapshot/{snapshot.id}",
                "source": f"arn:aws:ec2::{region}:volume/{volume_id}",
                "startTime": now_iso(),
                "endTime": now_iso(),
            }
        )
        emit(self.current_account, region, "aws.ec2", event["detail-type"], [detail["snapshot_id"]], detail)
        return ActionResult(snapshot)

    ElasticBlockStore.create_snapshot = create_snapshot

    # ------------------------------------------------------------------------------------ images
    original_bdm = Ami.block_device_mappings

    def block_device_mappings(self: Ami) -> list[dict[str, Any]]:
        return getattr(self, "_registered_mappings", None) or original_bdm.fget(self)  # type: ignore[attr-defined]

    Ami.block_device_mappings = property(block_device_mappings)  # type: ignore[assignment]

    def register_image(self: Any) -> Any:
        name = self._get_param("Name")
        self.error_on_dryrun()
        backend = self.ec2_backend
        taken = [a for a in backend.amis.values() if a.name == name and a.owner_id == backend.account_id]
        if taken:
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {taken[0].id}")
        mappings = self._get_param("BlockDeviceMappings", [])
        root_name = self._get_param("RootDeviceName") or (mappings[0]["DeviceName"] if mappings else "/dev/sda1")
        registered = []
        for m in mappings:
            ebs = m.get("Ebs") or {}
            snapshot = backend.get_snapshot(ebs["SnapshotId"]) if ebs.get("SnapshotId") else None
            entry: dict[str, Any] = {"DeviceName": m["DeviceName"]}
            if snapshot is not None:
                entry["Ebs"] = {
                    "SnapshotId": snapshot.id,
                    "VolumeSize": int(ebs.get("VolumeSize") or snapshot.volume.size),
                    "DeleteOnTermination": bool(ebs.get("DeleteOnTermination", True)),
                    "VolumeType": ebs.get("VolumeType", "gp2"),
                    "Encrypted": bool(snapshot.encrypted),
                    **({"KmsKeyId": snapshot.kms_key_id} if snapshot.kms_key_id else {}),
                }
            registered.append(entry)
        if not any(e["DeviceName"] == root_name and "Ebs" in e for e in registered):
            raise InvalidParameterValue(f"no snapshot for the root device {root_name}")
        ami = backend.register_image(name, self._get_param("Description", ""))
        # moto's placeholder root snapshot goes: the image's root is the snapshot given.
        backend.snapshots.pop(ami.ebs_snapshot.id, None)
        root = next(e for e in registered if e["DeviceName"] == root_name)
        ami.ebs_snapshot = backend.get_snapshot(root["Ebs"]["SnapshotId"])
        ami._registered_mappings = registered
        ami.root_device_name = root_name
        ami.root_device_type = "ebs"
        ami.architecture = self._get_param("Architecture", "x86_64")
        ami.virtualization_type = self._get_param("VirtualizationType", "paravirtual")
        ami.boot_mode = self._get_param("BootMode")
        ami.ena_support = self._get_bool_param("EnaSupport", False)
        ami.imds_support = self._get_param("ImdsSupport")
        for key, value in self._parse_tag_specification().get("image", {}).items():
            ami.add_tag(key, value)
        state = sample("ec2-ami-state-change")
        emit(
            backend.account_id,
            self.region,
            "aws.ec2",
            state["detail-type"],
            [f"arn:aws:ec2:{self.region}::image/{ami.id}"],
            {**state["detail"], "ImageId": ami.id, "State": "available", "ErrorMessage": ""},
        )
        return ActionResult({"ImageId": ami.id})

    AmisResponse.register_image = register_image

    def enable_image_deprecation(self: Any) -> Any:
        image_id = self._get_param("ImageId")
        deprecate_at = self._get_param("DeprecateAt")
        self.error_on_dryrun()
        ami = self.ec2_backend.describe_images(ami_ids=[image_id])[0]
        if ami.owner_id != self.ec2_backend.account_id:
            raise EC2ClientError("AuthFailure", f"not authorized to deprecate {image_id}")
        ami.deprecation_time = _iso_ms(deprecate_at)
        return ActionResult({"Return": True})

    AmisResponse.enable_image_deprecation = enable_image_deprecation

    original_describe = AmiBackend.describe_images

    def describe_images(
        self: Any,
        ami_ids: list[str] | None = None,
        filters: Any = None,
        exec_users: list[str] | None = None,
        owners: list[str] | None = None,
    ) -> list[Any]:
        account = self.account_id
        shared = _shared_with(account, self.region_name)
        if ami_ids:
            own = [i for i in ami_ids if i in self.amis or i in self.deleted_amis]
            found = original_describe(self, ami_ids=own, filters=filters) if own else []
            found += [a for a in shared if a.id in ami_ids]
            if not found and not own:
                from moto.ec2.exceptions import InvalidAMIIdError

                raise InvalidAMIIdError(ami_ids)
            return found
        if exec_users:
            users = {account if u == "self" else u for u in exec_users}
            candidates = list(self.amis.values()) + shared
            visible = [a for a in candidates if a.is_public or _permits(a, users, account)]
            if owners:
                wanted = {account if o == "self" else o for o in owners}
                visible = [a for a in visible if a.owner_id in wanted or a.owner_alias in wanted]
            if filters:
                from moto.ec2.utils import generic_filter

                return generic_filter(filters, visible)
            return visible
        found = original_describe(self, ami_ids=None, filters=filters, exec_users=None, owners=owners)
        if owners and any(o not in ("self", account) for o in owners):
            wanted = {o for o in owners if o not in ("self", account)}
            extra = [a for a in shared if a.owner_id in wanted]
            if filters:
                from moto.ec2.utils import generic_filter

                extra = generic_filter(filters, extra)
            found = found + extra
        return found

    AmiBackend.describe_images = describe_images

    # ------------------------------------------------------------------------------------ launch templates
    def create_launch_template_version(self: Any) -> Any:
        name = self._get_param("LaunchTemplateName")
        template_id = self._get_param("LaunchTemplateId")
        backend = self.ec2_backend
        template = backend.get_launch_template(template_id) if template_id else backend.get_launch_template_by_name(name)
        description = self._get_param("VersionDescription")
        data = self._get_param("LaunchTemplateData", {})
        source = self._get_param("SourceVersion")
        token = self._get_param("ClientToken")
        self.error_on_dryrun()
        with _lt_lock:
            key = (backend.account_id, backend.region_name, token or "")
            if token and key in _lt_tokens:
                version = template.get_version(_lt_tokens[key])
                if version.template is not template:
                    raise EC2ClientError("IdempotentParameterMismatch", f"client token {token} was used for another request")
            else:
                if source:
                    base = copy.deepcopy(template.get_version(source).data)
                    base.update(data)
                    data = base
                version = template.create_version(data, description)
                if token:
                    _lt_tokens[key] = version.number
        return ActionResult(
            {
                "LaunchTemplateVersion": {
                    "CreateTime": version.create_time,
                    "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:root",
                    "DefaultVersion": template.is_default(version),
                    "LaunchTemplateData": version.data,
                    "LaunchTemplateId": template.id,
                    "LaunchTemplateName": template.name,
                    "VersionDescription": version.description,
                    "VersionNumber": version.number,
                }
            }
        )

    LaunchTemplates.create_launch_template_version = create_launch_template_version

    original_describe_versions = LaunchTemplates.describe_launch_template_versions

    def describe_launch_template_versions(self: Any) -> Any:
        token = self._get_param("NextToken")
        max_results = self._get_int_param("MaxResults", 15)
        versions = self._get_param("Versions", [])
        if versions or self._get_param("MinVersion") or self._get_param("MaxVersion"):
            return original_describe_versions(self)
        self.error_on_dryrun()
        backend = self.ec2_backend
        template_id = self._get_param("LaunchTemplateId")
        template = (
            backend.get_launch_template(template_id)
            if template_id
            else backend.get_launch_template_by_name(self._get_param("LaunchTemplateName"))
        )
        start = int(token or 0)
        page = template.versions[start : start + max_results]
        result: dict[str, Any] = {
            "LaunchTemplateVersions": [
                {
                    "CreateTime": v.create_time,
                    "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:root",
                    "DefaultVersion": template.is_default(v),
                    "LaunchTemplateData": v.data,
                    "LaunchTemplateId": template.id,
                    "LaunchTemplateName": template.name,
                    "VersionDescription": v.description,
                    "VersionNumber": v.number,
                }
                for v in page
            ]
        }
        if start + max_results < len(template.versions):
            result["NextToken"] = str(start + max_results)
        return ActionResult(result)

    LaunchTemplates.describe_launch_template_versions = describe_launch_template_versions

    # ------------------------------------------------------------------------------------ booting
    def get_console_output(self: Any) -> Any:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        rule = _boot_rule(instance)
        text = rule["console"] if rule else _BOOTED.format(hostname=f"ip-{instance.id[2:10]}")
        return ActionResult(
            {"InstanceId": instance.id, "Timestamp": now_iso(), "Output": Base64EncodedString.from_raw_string(text)}
        )

    General.get_console_output = get_console_output

    def get_allowed_images_settings(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult({"State": "disabled", "ImageCriteria": [], "ManagedBy": "account"})

    General.get_allowed_images_settings = get_allowed_images_settings

    original_status = Instance.instance_status

    def instance_status(self: Instance) -> dict[str, Any]:
        status = original_status.fget(self)  # type: ignore[attr-defined]
        rule = _boot_rule(self)
        if self.state_code != 16 or not rule or rule.get("reachability", "passed") == "passed":
            return status
        return {"Details": [{"Name": "reachability", "Status": "failed"}], "Status": "impaired"}

    Instance.instance_status = property(instance_status)  # type: ignore[assignment]


def _iso_ms(value: Any) -> str:
    from datetime import datetime, timezone

    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return str(value)


def _member_of(account: str) -> tuple[str | None, set[str]]:
    """The Organization ARN an account belongs to, and the ARNs of its OU and every ancestor OU or root."""
    from moto.organizations.models import organizations_backends

    owner = organizations_backends.master_accounts.get(account)
    if owner is None:
        return None, set()
    org_backend = organizations_backends[owner[0]][owner[1]]
    if org_backend.org is None:
        return None, set()
    accounts = {a.id: a for a in org_backend.accounts}
    ous = {ou.id: ou for ou in org_backend.ou}
    arns: set[str] = set()
    parent = accounts[account].parent_id if account in accounts else None
    while parent and parent in ous:
        arns.add(ous[parent].arn)
        parent = getattr(ous[parent], "parent_id", None)
    return org_backend.org.arn, arns


def _permits(ami: Any, users: set[str], account: str) -> bool:
    org, ous = _member_of(account)
    for lp in ami.launch_permissions:
        if lp.get("UserId") in users:
            return True
        if org and lp.get("OrganizationArn") == org:
            return True
        if lp.get("OrganizationalUnitArn") in ous:
            return True
    return False


def _shared_with(account: str, region: str) -> list[Any]:
    """Images of other accounts in the Region whose launch permissions reach this account."""
    from moto.ec2.models import ec2_backends

    found = []
    for owner, regions in ec2_backends.items():
        if owner == account or region not in regions:
            continue
        for ami in list(regions[region].amis.values()):
            if ami.is_public or _permits(ami, {account}, account):
                found.append(ami)
    return found

