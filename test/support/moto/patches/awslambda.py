"""Lambda: moto keeps the functions, their configuration and their event source mappings (the control plane);
the test's Lambda runtime runs them. moto 5.2.1 runs functions in Docker, which is not here:

- Every invocation (Invoke API, EventBridge targets, CloudFormation custom resources) goes on the queue the
  runtime takes from, as an asynchronous invocation:
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html
- SQS event source mappings are polled by the runtime, as Lambda's pollers do
  (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html); moto's own shortcut, which hands a message
  to the function the moment it is sent and deletes it on success, is switched off.
- Inline code (a CloudFormation ZipFile) of a Node.js function is stored as index.js (moto names it index.py
  whatever the runtime):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-function-code.html
- GET /moto-api/stemcell/function-code?arn=… hands the runtime a function's deployed files.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

from .common import enqueue_invocation, parse_arn, route


def apply() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.sqs.models import sqs_backends

    def invoke(self: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        payload = json.loads(body) if isinstance(body, (str, bytes)) and body else (body or {})
        enqueue_invocation(self.function_arn, payload, "invoke")
        if response_headers is not None:
            response_headers["status"] = 202
        return b""

    LambdaFunction.invoke = invoke

    original_create_esm = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        esm = original_create_esm(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping

    original_cfn = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = cloudformation_json["Properties"]
        if "ZipFile" in props.get("Code", {}) and str(props.get("Runtime", "")).startswith("nodejs"):

            def as_index_js(source: str) -> bytes:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    z.writestr("index.js", source)
                return buf.getvalue()

            original_zip = cls._create_zipfile_from_plaintext_code
            cls._create_zipfile_from_plaintext_code = staticmethod(as_index_js)
            try:
                return original_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
            finally:
                cls._create_zipfile_from_plaintext_code = staticmethod(original_zip)
        return original_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    LambdaFunction.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]


@route("function-code")
def _function_code(_body: dict[str, Any], query: dict[str, str]) -> Any:
    from moto.awslambda.models import lambda_backends

    arn = parse_arn(query["arn"])
    fn = lambda_backends[arn["account"]][arn["region"]].get_function(query["arn"])
    with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as z:
        return {"files": {name: base64.b64encode(z.read(name)).decode() for name in z.namelist()}}
