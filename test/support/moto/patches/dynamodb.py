"""DynamoDB conditional writes are atomic: a condition is checked and the write made as one step, so two
concurrent writers of one item cannot both pass a condition only one of them should (moto's threaded server
checks and writes without a lock):
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate
One lock for every write of every table: coarser than DynamoDB, equally atomic.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_lock = threading.RLock()


def apply() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _lock:
                return method(*args, **kwargs)

        return locked

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
