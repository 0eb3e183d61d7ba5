"""S3 as the stack's bucket and its EventBridge notifications need it:

- A bucket created by CloudFormation keeps its VersioningConfiguration and NotificationConfiguration's
  EventBridgeConfiguration (moto's CloudFormation takes only encryption and tags):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-s3-bucket.html
- Notifications look as https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html shows them:
  `detail.object.etag` (moto spells it `eTag`), `version-id` only for a versioned object, the requester's
  account; only the account's default event bus receives them (moto sends them to every bus).
"""

from __future__ import annotations

from typing import Any

from .common import emit


def apply() -> None:
    from moto.s3 import notifications
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    original_create = FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        bucket = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        props = cloudformation_json.get("Properties", {})
        backend = s3_backends[account_id][get_partition(region_name)]
        status = (props.get("VersioningConfiguration") or {}).get("Status")
        if status:
            backend.put_bucket_versioning(bucket.name, status)
        event_bridge = (props.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
        if str(event_bridge.get("EventBridgeEnabled", "false")).lower() == "true":
            bucket.set_notification_configuration({"EventBridgeConfiguration": {}})
        return bucket

    FakeBucket.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        obj: dict[str, Any] = {
            "key": key.name,
            "size": key.size,
            "etag": key.etag.replace('"', ""),
            "sequencer": "617F08299329D189",
        }
        if key.version_id and key.version_id != "null":
            obj["version-id"] = key.version_id
        emit(
            account_id,
            bucket.region_name,
            "aws.s3",
            notifications._detail_type(event_name),
            [bucket.arn],
            {
                "version": "0",
                "bucket": {"name": bucket.name},
                "object": obj,
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": account_id,
                "source-ip-address": "127.0.0.1",
                # s3:ObjectCreated:Put → PutObject, as S3 names the API call
                "reason": _reason(event_name),
            },
        )

    notifications._send_event_bridge_message = send_event_bridge_message


def _reason(event_name: str) -> str:
    action = event_name.split(":")[-1]
    return {
        "Put": "PutObject",
        "Post": "POST Object",
        "Copy": "CopyObject",
        "CompleteMultipartUpload": "CompleteMultipartUpload",
    }.get(action, action)
