"""What the patches share: the events AWS services emit on their own, delivered the way EventBridge delivers
them; the queue of Lambda invocations the test's Lambda runtime takes from; and the moto-api routes that
expose both (and the per-test controls of the patches) under /moto-api/stemcell/.

Event delivery follows https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html and
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html: a rule's target receives the whole
event unchanged (no Input/InputPath/InputTransformer), `account` included; a Lambda target is invoked
asynchronously; an event bus target (another account or Region) receives the event as it was, with its
original id, account, Region, time and resources
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-account.html,
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-region.html).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

SETTINGS: dict[str, Any] = {"samples_dir": "", "endpoint": ""}

# ---------------------------------------------------------------------------------------------- invocations
_invocations: list[dict[str, Any]] = []
_invocations_cv = threading.Condition()


def enqueue_invocation(function_arn: str, payload: Any, source: str) -> None:
    """An asynchronous Lambda invocation, taken by the test's Lambda runtime (GET .../invocations)."""
    with _invocations_cv:
        _invocations.append(
            {
                "id": str(uuid.uuid4()),
                "functionArn": function_arn,
                "payload": payload,
                "source": source,
            }
        )
        _invocations_cv.notify_all()


def take_invocations(wait_seconds: float) -> list[dict[str, Any]]:
    with _invocations_cv:
        if not _invocations and wait_seconds > 0:
            _invocations_cv.wait(wait_seconds)
        taken = list(_invocations)
        _invocations.clear()
        return taken


# ---------------------------------------------------------------------------------------------- time, ids
def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(value: Any) -> str:
    """moto keeps event times as epoch seconds in places; events carry ISO 8601 (UTC, seconds)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def sample(name: str) -> dict[str, Any]:
    """The documented shape of an AWS event, from the repository's events/samples/<name>.json."""
    with open(f"{SETTINGS['samples_dir']}/{name}.json", encoding="utf-8") as f:
        return json.load(f)


def parse_arn(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        raise ValueError(f"not an ARN: {arn}")
    return {
        "partition": parts[1],
        "service": parts[2],
        "region": parts[3],
        "account": parts[4],
        "resource": parts[5],
    }


# ---------------------------------------------------------------------------------------------- delivery
def emit(account: str, region: str, source: str, detail_type: str, resources: list[str], detail: Any) -> None:
    """An event an AWS service sends on its own: on the default bus of the account and Region it concerns."""
    deliver(
        account,
        region,
        "default",
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": now_iso(),
            "region": region,
            "resources": resources,
            "detail": detail,
        },
    )


def deliver(account: str, region: str, bus_name: str, event: dict[str, Any]) -> None:
    """Every rule of the bus whose pattern matches sends the event to each of its targets."""
    from moto.events.models import events_backends

    backend = events_backends[account][region]
    bus = backend.event_buses.get(bus_name)
    if bus is None:
        return
    for rule in list(bus.rules.values()):
        if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
            continue
        if not rule.event_pattern.matches_event(event):
            continue
        for target in list(rule.targets):
            send_to_target(rule, target, event)


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        found = parse(target["InputPath"]).find(event)
        return found[0].value if found else None
    if "InputTransformer" in target:
        from moto.events.utils import EventTemplateParser

        t = target["InputTransformer"]
        return EventTemplateParser.parse(
            input_template=t.get("InputTemplate"),
            input_paths_map=t.get("InputPathsMap", {}),
            event={**event, "ingestion-time": event.get("time")},
        )
    return copy.deepcopy(event)


def send_to_target(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
    arn = parse_arn(target["Arn"])
    payload = _target_input(target, event)
    if arn["service"] == "sqs":
        from moto.sqs.models import sqs_backends

        group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
        sqs_backends[arn["account"]][arn["region"]].send_message(
            queue_name=arn["resource"],
            message_body=json.dumps(payload),
            group_id=group_id,
        )
    elif arn["service"] == "lambda":
        enqueue_invocation(target["Arn"], payload, f"events:{rule.arn}")
    elif arn["service"] == "events" and arn["resource"].startswith("event-bus/"):
        deliver(arn["account"], arn["region"], arn["resource"][len("event-bus/") :], copy.deepcopy(event))
    elif arn["service"] == "logs":
        pass  # CloudWatch Logs targets: nothing in the flow reads them
    else:
        raise NotImplementedError(f"EventBridge target {target['Arn']} is not modelled")


# ---------------------------------------------------------------------------------------------- moto-api routes
Handler = Callable[[dict[str, Any], dict[str, str]], Any]
_routes: dict[str, Handler] = {}


def route(name: str) -> Callable[[Handler], Handler]:
    """POST/GET /moto-api/stemcell/<name>: JSON body in (POST), JSON out."""

    def register(fn: Handler) -> Handler:
        _routes[name] = fn
        return fn

    return register


def install_routes() -> None:
    from urllib.parse import parse_qs, urlparse

    from moto.moto_api._internal import urls

    def make(name: str, fn: Handler) -> Callable[..., Any]:
        def view(request: Any, full_url: str, headers: Any) -> Any:
            try:
                raw = request.get_data() if hasattr(request, "get_data") else request.body
                body = json.loads(raw) if raw else {}
                query = {k: v[0] for k, v in parse_qs(urlparse(full_url).query).items()}
                return 200, {"Content-Type": "application/json"}, json.dumps(fn(body, query))
            except Exception as err:  # noqa: BLE001 - the caller sees the error, the server goes on
                return 500, {"Content-Type": "application/json"}, json.dumps({"error": repr(err)})

        view.__name__ = f"stemcell_{name.replace('-', '_')}"
        return view

    for name, fn in _routes.items():
        urls.url_paths["{0}/moto-api/stemcell/" + name + "$"] = make(name, fn)


@route("invocations")
def _invocations_route(_body: dict[str, Any], query: dict[str, str]) -> Any:
    return {"invocations": take_invocations(float(query.get("wait", "0")))}



@route("queues")
def _queues_route(_body: dict[str, Any], _query: dict[str, str]) -> Any:
    """Every SQS queue's visible and in-flight message counts: how the test knows the flow is quiet."""
    from moto.sqs.models import sqs_backends

    out = []
    for account, regions in list(sqs_backends.items()):
        for region, backend in list(regions.items()):
            for queue in list(backend.queues.values()):
                out.append(
                    {
                        "account": account,
                        "region": region,
                        "name": queue.name,
                        "visible": queue.approximate_number_of_messages,
                        "inFlight": queue.approximate_number_of_messages_not_visible,
                    }
                )
    return {"queues": out}


@route("fire-rule")
def _fire_rule(body: dict[str, Any], _query: dict[str, str]) -> Any:
    """A scheduled rule's time came: EventBridge sends its targets the "Scheduled Event"
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html)."""
    from moto.events.models import events_backends

    backend = events_backends[body["account"]][body["region"]]
    rule = backend.event_buses[body.get("bus", "default")].rules[body["rule"]]
    if not rule.scheduled_expression:
        raise ValueError(f"rule {body['rule']} has no schedule")
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": body["account"],
        "time": now_iso(),
        "region": body["region"],
        "resources": [rule.arn],
        "detail": {},
    }
    for target in list(rule.targets):
        send_to_target(rule, target, event)
    return {"targets": len(rule.targets)}
