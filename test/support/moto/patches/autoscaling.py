"""Auto Scaling instance refreshes (not in moto 5.2.1):

- StartInstanceRefresh starts one refresh per group at a time (InstanceRefreshInProgress otherwise), and
  DescribeInstanceRefreshes reports it, newest first:
  https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StartInstanceRefresh.html
  https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeInstanceRefreshes.html
- When it ends, Auto Scaling sends "EC2 Auto Scaling Instance Refresh Succeeded" or "… Failed" to the
  account's default bus in the group's Region:
  https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-event-reference.html
How a refresh ends (and after how long) is set by the test per group (POST /moto-api/stemcell/refresh-outcomes);
by default it succeeds a second after it started. Instances are not replaced (the groups here run none).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .common import emit, now_iso, route, sample

_refreshes: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
_outcomes: list[dict[str, Any]] = []
_lock = threading.Lock()
_ACTIVE = {"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"}
_END_EVENTS = {
    "Successful": "autoscaling-instance-refresh-succeeded",
    "Failed": "autoscaling-instance-refresh-failed",
}


@route("refresh-outcomes")
def _set_outcomes(body: dict[str, Any], _query: dict[str, str]) -> Any:
    """{outcomes: [{account?, region?, group, status: Successful|Failed, reason?, seconds?}]}: replaces them."""
    with _lock:
        _outcomes[:] = body.get("outcomes", [])
    return {"outcomes": len(_outcomes)}


def _outcome(account: str, region: str, group: str) -> dict[str, Any]:
    with _lock:
        for o in _outcomes:
            if o.get("group") == group and o.get("account") in (None, account) and o.get("region") in (None, region):
                return o
    return {"status": "Successful"}


def apply() -> None:
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult
    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError

    def start_instance_refresh(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        backend = self.autoscaling_backend
        group = backend.autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - {name}")
        key = (self.current_account, self.region, name)
        with _lock:
            history = _refreshes.setdefault(key, [])
            if any(r["Status"] in _ACTIVE for r in history):
                raise AutoscalingClientError(
                    "InstanceRefreshInProgress", f"An Instance Refresh is already in progress for {name}"
                )
            refresh = {
                "InstanceRefreshId": str(uuid.uuid4()),
                "AutoScalingGroupName": name,
                "Status": "InProgress",
                "StatusReason": "",
                "StartTime": now_iso(),
                "PercentageComplete": 0,
                "InstancesToUpdate": len(group.instance_states),
                "Preferences": self._get_param("Preferences", {}),
            }
            history.insert(0, refresh)
        outcome = _outcome(self.current_account, self.region, name)
        account, region, arn = self.current_account, self.region, group.arn

        def finish() -> None:
            with _lock:
                refresh["Status"] = outcome["status"]
                refresh["StatusReason"] = outcome.get("reason", "")
                refresh["EndTime"] = now_iso()
                refresh["PercentageComplete"] = 100 if outcome["status"] == "Successful" else 0
            event = sample(_END_EVENTS[outcome["status"]])
            emit(
                account,
                region,
                "aws.autoscaling",
                event["detail-type"],
                [arn],
                {**event["detail"], "InstanceRefreshId": refresh["InstanceRefreshId"], "AutoScalingGroupName": name},
            )

        timer = threading.Timer(float(outcome.get("seconds", 1.0)), finish)
        timer.daemon = True
        timer.start()
        return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})

    def describe_instance_refreshes(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        ids = self._get_param("InstanceRefreshIds", [])
        if name not in self.autoscaling_backend.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - {name}")
        with _lock:
            history = list(_refreshes.get((self.current_account, self.region, name), []))
        found = [dict(r) for r in history if not ids or r["InstanceRefreshId"] in ids]
        return ActionResult({"InstanceRefreshes": found})

    AutoScalingResponse.start_instance_refresh = start_instance_refresh
    AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes
