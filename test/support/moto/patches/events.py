"""EventBridge: PutEvents and rule targets as AWS documents them.

- Targets get the whole event, `account` included (moto's default input template drops it):
  https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html
- Lambda targets are invoked asynchronously (moto 5.2.1 raises NotImplementedError for them):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html
- An event bus in another account or Region as target receives the event unchanged:
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-account.html
- `Ref` of an AWS::Events::EventBus is its name (moto hands the object itself on, and the rule that names it
  crashes the stack):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-events-eventbus.html
- PutEvents' EventBusName may be another account's bus ARN (moto looks the name up in the caller's account):
  https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html
- A rule has at most 5 targets (moto takes any number):
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html
- PutEvents reports an entry that failed on the service's side per entry (ErrorCode, FailedEntryCount), the
  others accepted; a test makes the next entries of a detail-type fail so (POST /moto-api/stemcell/put-events-failures):
  https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .common import deliver, iso, now_iso, parse_arn, route, send_to_target

# detail-type → how many of its next PutEvents entries fail with InternalFailure
_failures: dict[str, int] = {}


@route("put-events-failures")
def _set_failures(body: dict[str, Any], _query: dict[str, str]) -> Any:
    _failures[body["detailType"]] = int(body.get("times", 1))
    return {"detailType": body["detailType"], "times": _failures[body["detailType"]]}


def apply() -> None:
    from moto.events.exceptions import ResourceNotFoundException
    from moto.events.models import EventBus, EventsBackend, Rule, events_backends

    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]

    def send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
        # moto's own callers (S3 notifications before our patch) hand events with epoch times.
        event = {**original_event, "time": iso(original_event.get("time") or now_iso())}
        if not self.event_pattern.matches_event(event):
            return
        for target in list(self.targets):
            send_to_target(self, target, event)

    Rule.send_to_targets = send_to_targets

    def put_events(self: EventsBackend, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(entries) > 10:
            from moto.events.exceptions import ValidationException

            raise ValidationException(
                "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed to satisfy "
                "constraint: Member must have length less than or equal to 10"
            )
        results: list[dict[str, Any]] = []
        for entry in entries:
            for field in ("Source", "DetailType", "Detail"):
                if not entry.get(field):
                    results.append(
                        {
                            "ErrorCode": "InvalidArgument",
                            "ErrorMessage": f"Parameter {field} is not valid. Reason: {field} is a required argument.",
                        }
                    )
                    break
            else:
                try:
                    detail = json.loads(entry["Detail"])
                except ValueError:
                    results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
                    continue
                bus = entry.get("EventBusName") or "default"
                account, region, name = self.account_id, self.region_name, bus
                if bus.startswith("arn:"):
                    arn = parse_arn(bus)
                    account, region, name = arn["account"], arn["region"], arn["resource"].split("/", 1)[1]
                if name not in events_backends[account][region].event_buses:
                    raise ResourceNotFoundException(f"Event bus {name} does not exist.")
                if _failures.get(entry["DetailType"], 0) > 0:
                    _failures[entry["DetailType"]] -= 1
                    results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected by the test"})
                    continue
                event_id = str(uuid.uuid4())
                time = entry.get("Time")
                deliver(
                    account,
                    region,
                    name,
                    {
                        "version": "0",
                        "id": event_id,
                        "detail-type": entry["DetailType"],
                        "source": entry["Source"],
                        # The sender's account and Region, whichever bus it put the event on.
                        "account": self.account_id,
                        "time": iso(time) if time else now_iso(),
                        "region": self.region_name,
                        "resources": entry.get("Resources", []),
                        "detail": detail,
                    },
                )
                results.append({"EventId": event_id})
        return results

    EventsBackend.put_events = put_events

    original_put_targets = EventsBackend.put_targets

    def put_targets(self: EventsBackend, name: str, event_bus_arn: str | None, targets: list[dict[str, Any]]) -> None:
        from moto.core.exceptions import JsonRESTError

        bus = self._get_event_bus(self._normalize_event_bus_arn(event_bus_arn))
        rule = bus.rules.get(name)
        if rule is not None:
            ids = {t["Id"] for t in rule.targets} | {t["Id"] for t in targets}
            if len(ids) > 5:
                raise JsonRESTError(
                    "LimitExceededException",
                    f"The requested resource exceeds the maximum number allowed: rule {name} would have {len(ids)} targets (5 allowed)."
                )
        original_put_targets(self, name, event_bus_arn, targets)

    EventsBackend.put_targets = put_targets
