"""EBS snapshot locks (LockSnapshot, UnlockSnapshot, DescribeLockedSnapshots), which moto lacks.

AWS behaviour reproduced (EC2 API reference, LockSnapshot / DescribeLockedSnapshots):
- LockSnapshot: `LockMode` `governance` or `compliance` (required); `LockDuration` 1-36500 days or
  `ExpirationDate`, exactly one; `CoolOffPeriod` 1-72 hours, compliance mode only. The answer
  carries the lock's state and times.
- States: `governance`; `compliance-cooloff` until the cooling-off period ends, then `compliance`;
  `expired` once the lock's time is over (the snapshot is no longer locked).
- UnlockSnapshot: governance locks and compliance locks still cooling off; a compliance lock past
  its cooling-off period cannot be unlocked.
- DescribeLockedSnapshots: the caller's locked snapshots (`SnapshotIds`, filter `lock-state`),
  `MaxResults` 5-1000 with `NextToken`.
- A locked snapshot cannot be deleted: DeleteSnapshot is refused with `SnapshotLocked`, and
  DeregisterImage `DeleteAssociatedSnapshots` leaves it with return code `client-error`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError

_lock = threading.Lock()
# (account, region) -> {snapshot id: lock}
_locks: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


class _Error(EC2ClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _now() -> datetime:
    return utcnow().replace(tzinfo=timezone.utc)


def _state(lock: dict[str, Any], now: datetime) -> str:
    if lock["expires"] <= now:
        return "expired"
    if lock["mode"] == "governance":
        return "governance"
    if lock.get("cooloff_until") and now < lock["cooloff_until"]:
        return "compliance-cooloff"
    return "compliance"


def is_locked(account_id: str, region: str, snapshot_id: str) -> bool:
    with _lock:
        lock = _locks.get((account_id, region), {}).get(snapshot_id)
    return lock is not None and _state(lock, _now()) != "expired"


def forget(account_id: str, region: str, snapshot_id: str) -> None:
    with _lock:
        _locks.get((account_id, region), {}).pop(snapshot_id, None)


def _info(backend: Any, snapshot_id: str, lock: dict[str, Any], now: datetime) -> dict[str, Any]:
    info: dict[str, Any] = {
        "OwnerId": backend.account_id,
        "SnapshotId": snapshot_id,
        "LockState": _state(lock, now),
        "LockCreatedOn": _iso(lock["created"]),
        "LockDurationStartTime": _iso(lock["created"]),
        "LockExpiresOn": _iso(lock["expires"]),
    }
    if lock.get("duration_days"):
        info["LockDuration"] = lock["duration_days"]
    if lock.get("cooloff_hours"):
        info["CoolOffPeriod"] = lock["cooloff_hours"]
        info["CoolOffPeriodExpiresOn"] = _iso(lock["cooloff_until"])
    return info


def _int_param(self: Any, name: str, low: int, high: int) -> int | None:
    raw = self._get_param(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _Error("InvalidParameterValue", f"Invalid value '{raw}' for {name}")
    if not low <= value <= high:
        raise _Error("InvalidParameterValue", f"{name} must be between {low} and {high}")
    return value


def lock_snapshot(self: Any) -> ActionResult:
    backend = self.ec2_backend
    snapshot_id = self._get_param("SnapshotId")
    mode = self._get_param("LockMode")
    if not snapshot_id:
        raise _Error("MissingParameter", "The request must contain the parameter SnapshotId")
    if mode not in ("governance", "compliance"):
        raise _Error("InvalidParameterValue", f"Invalid value '{mode}' for LockMode")
    duration = _int_param(self, "LockDuration", 1, 36500)
    cooloff = _int_param(self, "CoolOffPeriod", 1, 72)
    expiration = self._get_param("ExpirationDate")
    if (duration is None) == (expiration is None):
        raise _Error(
            "InvalidParameterCombination", "Specify exactly one of LockDuration and ExpirationDate"
        )
    if cooloff is not None and mode != "compliance":
        raise _Error("InvalidParameterCombination", "CoolOffPeriod is valid only in compliance mode")
    self.error_on_dryrun()
    if snapshot_id not in backend.snapshots:
        raise InvalidSnapshotIdError()
    now = _now()
    if duration is not None:
        expires = now + timedelta(days=duration)
    else:
        from moto.core.parse import default_timestamp_parser

        expires = default_timestamp_parser(expiration)
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        if expires <= now:
            raise _Error("InvalidParameterValue", "ExpirationDate must be in the future")
    lock = {
        "mode": mode,
        "created": now,
        "expires": expires,
        "duration_days": duration,
        "cooloff_hours": cooloff,
        "cooloff_until": now + timedelta(hours=cooloff) if cooloff else None,
    }
    with _lock:
        existing = _locks.get((backend.account_id, backend.region_name), {}).get(snapshot_id)
        if existing is not None and _state(existing, now) == "compliance":
            # A compliance lock past its cooling-off period can only be extended.
            if expires < existing["expires"] or mode != "compliance":
                raise _Error(
                    "InvalidParameterValue",
                    f"Snapshot {snapshot_id} is locked in compliance mode; its lock can only be extended",
                )
        _locks.setdefault((backend.account_id, backend.region_name), {})[snapshot_id] = lock
    return ActionResult(_info(backend, snapshot_id, lock, now))


def unlock_snapshot(self: Any) -> ActionResult:
    backend = self.ec2_backend
    snapshot_id = self._get_param("SnapshotId")
    self.error_on_dryrun()
    if snapshot_id not in backend.snapshots:
        raise InvalidSnapshotIdError()
    with _lock:
        locks = _locks.get((backend.account_id, backend.region_name), {})
        lock = locks.get(snapshot_id)
        if lock is not None and _state(lock, _now()) == "compliance":
            raise _Error(
                "InvalidParameterValue",
                f"Snapshot {snapshot_id} is locked in compliance mode and cannot be unlocked",
            )
        locks.pop(snapshot_id, None)
    return ActionResult({"SnapshotId": snapshot_id})


def describe_locked_snapshots(self: Any) -> ActionResult:
    backend = self.ec2_backend
    self.error_on_dryrun()
    max_results = _int_param(self, "MaxResults", 5, 1000)
    wanted = self._get_param("SnapshotIds", [])
    filters = self._filters_from_querystring() or {}
    unknown = set(filters) - {"lock-state"}
    if unknown:
        raise _Error("InvalidParameterValue", f"The filter '{sorted(unknown)[0]}' is invalid")
    states = set(filters.get("lock-state", []))
    now = _now()
    with _lock:
        locks = dict(_locks.get((backend.account_id, backend.region_name), {}))
    items = []
    for snapshot_id in sorted(locks):
        if snapshot_id not in backend.snapshots:
            continue
        if wanted and snapshot_id not in wanted:
            continue
        info = _info(backend, snapshot_id, locks[snapshot_id], now)
        if states and info["LockState"] not in states:
            continue
        items.append(info)
    import fidelity

    return fidelity.paged_result(self, items, max_results or 1000, "Snapshots")


def apply() -> None:
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    ElasticBlockStore.lock_snapshot = lock_snapshot
    ElasticBlockStore.unlock_snapshot = unlock_snapshot
    ElasticBlockStore.describe_locked_snapshots = describe_locked_snapshots
