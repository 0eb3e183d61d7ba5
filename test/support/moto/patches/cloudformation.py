"""CloudFormation templates as AWS reads them.

- The YAML short form `!Condition Name` is the condition reference {"Condition": "Name"} (moto reads
  {"Fn::Condition": …}, which no condition operator knows, so `!Not [!Condition X]` is always true):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-condition.html
- Parameters of an SSM parameter type resolve their Default only when the stack passes no
value (moto resolves every default, and fails on a public parameter that is not in its store although the
stack overrides it):
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html#aws-ssm-parameter-types
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    from moto.cloudformation import models, responses, utils
    from moto.cloudformation.parsing import ResourceMap

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
