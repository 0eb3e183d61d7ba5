"""SQS queues created by CloudFormation, as
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sqs-queue.html returns them:

- `Ref` and `Fn::GetAtt QueueUrl` are the queue's URL, where the queue answers. moto answers SQS on its own
  host, but returns https://sqs.<region>.amazonaws.com/… for CloudFormation, a host that is not here.
- A FIFO queue without QueueName gets a generated name ending in .fifo (moto refuses the stack instead).
"""

from __future__ import annotations

from typing import Any

from .common import SETTINGS


def apply() -> None:
    from moto.sqs.models import Queue

    def url(self: Queue) -> str:
        return f"{SETTINGS['endpoint']}/{self.account_id}/{self.name}"

    Queue.physical_resource_id = property(url)  # type: ignore[assignment]

    original_attribute = Queue.get_cfn_attribute

    def get_cfn_attribute(self: Queue, attribute_name: str) -> str:
        if attribute_name == "QueueUrl":
            return url(self)
        return original_attribute(self, attribute_name)

    Queue.get_cfn_attribute = get_cfn_attribute
    original_has = Queue.has_cfn_attr.__func__  # type: ignore[attr-defined]
    Queue.has_cfn_attr = classmethod(lambda cls, attr: attr == "QueueUrl" or original_has(cls, attr))  # type: ignore[assignment]

    original_create = Queue.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = cloudformation_json.get("Properties", {})
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        if fifo and "QueueName" not in props and not str(resource_name).endswith(".fifo"):
            resource_name = f"{str(resource_name)[:75]}.fifo"
        return original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Queue.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]
