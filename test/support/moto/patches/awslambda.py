"""Lambda: moto keeps the functions, their configuration and their event source mappings (the control plane);
the test's Lambda runtime runs them. moto 5.2.1 runs functions in Docker, which is not here:

- Every invocation (Invoke API, EventBridge targets, CloudFormation custom resources) goes on the queue the
  runtime takes from, as an asynchronous invocation:
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html
- SQS event source mappings are polled by the runtime, as Lambda's pollers do
  (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html); moto's own shortcut, which hands a message
  to the function the moment it is sent and deletes it on success, is switched off.
"""

from __future__ import annotations

import json
from typing import Any

from .common import enqueue_invocation


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
