"""CloudFormation templates as AWS reads them.

- The YAML short form `!Condition Name` is the condition reference {"Condition": "Name"} (moto reads
  {"Fn::Condition": …}, which no condition operator knows, so `!Not [!Condition X]` is always true):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-condition.html
- Parameters of an SSM parameter type resolve their Default only when the stack passes no value (moto
  resolves every default, and fails on a public parameter that is not in its store although the stack
  overrides it):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html#aws-ssm-parameter-types
- A custom resource's response reaches the stack it names, in whichever account (moto looks the stack up in
  its default account), and FAILED fails the stack with the given reason (moto ignores it and the stack stays
  in progress): https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
"""

from __future__ import annotations

import json
from typing import Any


def apply() -> None:
    from moto.cloudformation import models, responses, utils
    from moto.cloudformation.parsing import ResourceMap

    def process_cfn_response(self: Any) -> Any:
        body = json.loads(self.body or "{}")
        stack_id = body["StackId"]
        _, _, _, region, account = stack_id.split(":")[:5]
        stack = models.cloudformation_backends[account][region].get_stack(stack_id)
        if body.get("Status") == "SUCCESS":
            stack.get_custom_resource(body["LogicalResourceId"]).set_data(body.get("Data") or {})
            stack.verify_readiness()
        else:
            stack.status = "CREATE_FAILED"
            stack.stack_status_reason = f"{body.get('LogicalResourceId')}: {body.get('Reason', 'no reason given')}"
            stack._add_stack_event("CREATE_FAILED", resource_status_reason=stack.stack_status_reason)
        return 200, {"status": 200}, "{}"

    responses.CloudFormationResponse.process_cfn_response = process_cfn_response

    original_tag = utils.yaml_tag_constructor

    def yaml_tag_constructor(loader: Any, tag: Any, node: Any) -> Any:
        if tag == "!Condition":
            return {"Condition": node.value}
        return original_tag(loader, tag, node)

    for module in (utils, models, responses):
        module.yaml_tag_constructor = yaml_tag_constructor

    original = ResourceMap.load_parameters

    def load_parameters(self: Any) -> None:
        slots = self._template.get("Parameters", {})
        passed = {
            name: slot.pop("Default")
            for name, slot in slots.items()
            if name in self.input_parameters
            and str(slot.get("Type", "")).startswith("AWS::SSM::Parameter::")
            and "Default" in slot
        }
        try:
            original(self)
        finally:
            for name, default in passed.items():
                slots[name]["Default"] = default

    ResourceMap.load_parameters = load_parameters
