"""AWS takes time: per-account knobs that make the emulator as slow to settle as AWS is.

An emulator where everything happens at once hides the code paths that real AWS exercises every day
(shared EMULATOR.md, "AWS takes time"). Each knob reproduces one documented behaviour, in seconds of
real time (tests use windows of a second or two):

  POST /_emulator/config {"account": ID, "timing": {...} | null}

Settings replace the account's earlier ones; what they set going holds (a pending image, a listed
deregistered image, a snapshot still in use) until its time is up. `null` ends what is held back
at once (listed deregistered images, snapshots in use, late read-backs, unknown ids); an image
already pending stays so until its time is up.

| knob | AWS behaviour |
|---|---|
| `deregistered_listed` | DescribeImages: "Recently deregistered images appear in the returned results for a short interval", state `deregistered` (not those a Recycle Bin rule took: the bin lists them) |
| `pending` | CreateImage and CopyImage images (and their snapshots) are `pending` first |
| `fail` | name globs: such CreateImage/CopyImage images end `failed` instead of `available` |
| `unknown_for` | a new id (CreateImage, CopyImage, RegisterImage, RunInstances, RestoreImageFromRecycleBin; a copy's snapshots) is unknown for a while: calls naming it answer `InvalidAMIID.NotFound` / `InvalidInstanceID.NotFound` / `InvalidSnapshot.NotFound`, and DescribeImages listings leave the image out |
| `in_use_after_deregister` | DeleteSnapshot answers `InvalidSnapshot.InUse` for a while after the image that used the snapshot was deregistered; DeleteAssociatedSnapshots of another image that shares it reports `skipped` |
| `read_back_lag` | DescribeImageAttribute launchPermission and DescribeSnapshotAttribute createVolumePermission show the value from before a change for a while |
| `ssm_image_validation` | PutParameter with DataType `aws:ec2:image` answers at once; the value is written this many seconds later, and never when it is not an available image of the region (always asynchronous; this sets the delay, default 0) |

A lost answer for any action is `{"lose_answers": {"ec2:CreateImage": 1}}` (faults.py); a name in use
is `InvalidAMIName.Duplicate` (fidelity.py, always); deprecation times are rounded and checked as AWS
does (fidelity.py, always).
"""

from __future__ import annotations

import copy
import fnmatch
import threading
import time
from typing import Any

_KNOBS = (
    "deregistered_listed",
    "pending",
    "fail",
    "unknown_for",
    "in_use_after_deregister",
    "read_back_lag",
    "ssm_image_validation",
)

_lock = threading.RLock()
_settings: dict[str, dict[str, Any]] = {}
# (region, resource id) -> (monotonic time until which the id is unknown, the owning account)
_young: dict[tuple[str, str], tuple[float, str]] = {}
# (account, region) -> {image id: (the image as it was, listed until)}
_ghosts: dict[tuple[str, str], dict[str, tuple[Any, float]]] = {}
# (account, region) -> {snapshot id: (in use until, the image it was in use by)}
_freed: dict[tuple[str, str], dict[str, tuple[float, str]]] = {}
# (account, region, resource id) -> (the value before the change, shown until)
_lagging: dict[tuple[str, str, str], tuple[Any, float]] = {}


def configure(account: str, config: dict[str, Any] | None) -> None:
    if config:
        unknown = set(config) - set(_KNOBS)
        if unknown:
            raise ValueError(f"unknown timing settings: {sorted(unknown)}")
        for knob, value in config.items():
            if knob == "fail":
                if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                    raise ValueError("timing.fail takes a list of name globs")
            elif not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"timing.{knob} takes seconds (>= 0)")
    with _lock:
        if config:
            _settings[account] = dict(config)
        else:
            # null: AWS has caught up with everything this account did.
            _settings.pop(account, None)
            for held in (_ghosts, _freed):
                for key in [k for k in held if k[0] == account]:
                    del held[key]
            for key in [k for k in _lagging if k[0] == account]:
                del _lagging[key]
            for key in [k for k, (_, owner) in _young.items() if owner == account]:
                del _young[key]


def _knob(account: str, name: str) -> Any:
    with _lock:
        return _settings.get(account, {}).get(name)


def _now() -> float:
    return time.monotonic()


# ---------------------------------------------------------------------------------------------
# Images and snapshots that are `pending` first (a property with a timer, so nothing runs in the
# background: the state is what it is when it is read).
# ---------------------------------------------------------------------------------------------
def _timed(attribute: str, pending: str) -> property:
    store, timer = f"_{attribute}_value", f"_{attribute}_timer"

    def get(self: Any) -> Any:
        until_final = self.__dict__.get(timer)
        if until_final is not None:
            until, final, reason = until_final
            if _now() < until:
                return pending
            self.__dict__[timer] = None
            self.__dict__[store] = final
            if reason is not None:
                self.__dict__["_state_reason_value"] = reason
        return self.__dict__.get(store)

    def set_(self: Any, value: Any) -> None:
        self.__dict__[store] = value
        self.__dict__[timer] = None

    return property(get, set_)


def made_image(backend: Any, ami: Any, snapshot_ids: list[str], pends: bool) -> None:
    """A new image: unknown for a while (`unknown_for`), and, for CreateImage/CopyImage (`pends`),
    pending first (`pending`), then available, or failed (`fail`)."""
    account, region = backend.account_id, backend.region_name
    unknown = _knob(account, "unknown_for")
    if unknown:
        with _lock:
            until = _now() + float(unknown)
            _young[(region, ami.id)] = (until, account)
            for snapshot_id in snapshot_ids:
                _young[(region, snapshot_id)] = (until, account)
    seconds = _knob(account, "pending") if pends else None
    fail = any(fnmatch.fnmatchcase(ami.name or "", glob) for glob in _knob(account, "fail") or [])
    if not pends or not (seconds or fail):
        return
    until = _now() + float(seconds or 0)
    reason = (
        {"Code": "Client.ImageCreationFailed", "Message": "the image could not be made (emulator: timing.fail)"}
        if fail
        else None
    )
    ami.__dict__["_state_timer"] = (until, "failed" if fail else "available", reason)
    for snapshot_id in snapshot_ids:
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is not None:
            snapshot.__dict__["_status_timer"] = (until, "completed", None)


def made_instances(backend: Any, instance_ids: list[str]) -> None:
    unknown = _knob(backend.account_id, "unknown_for")
    if unknown:
        with _lock:
            until = _now() + float(unknown)
            for instance_id in instance_ids:
                _young[(backend.region_name, instance_id)] = (until, backend.account_id)


def young(region: str, resource_id: str) -> bool:
    with _lock:
        entry = _young.get((region, resource_id))
        if entry is None:
            return False
        if _now() >= entry[0]:
            del _young[(region, resource_id)]
            return False
        return True


_ID_PARAMS = ("ImageId", "InstanceId", "SnapshotId", "ResourceId", "SourceImageId", "SourceSnapshotId")
_NOT_FOUND = {
    "ami-": ("InvalidAMIID.NotFound", "The image id '[{id}]' does not exist"),
    "i-": ("InvalidInstanceID.NotFound", "The instance ID '{id}' does not exist"),
    "snap-": ("InvalidSnapshot.NotFound", "The snapshot '{id}' does not exist."),
}


def refuse_unknown(region: str, action: str, params: dict[str, list[str]]) -> tuple[str, str] | None:
    """The NotFound AWS answers a call that names an id it does not know yet, or None."""
    if not action.startswith("ec2:"):
        return None
    for key, values in params.items():
        name = key.split(".")[0]
        if name not in _ID_PARAMS:
            continue
        # CopyImage names its source in another region.
        where = (params.get("SourceRegion") or [region])[0] if name.startswith("Source") else region
        for value in values:
            if young(where, value):
                for prefix, (code, message) in _NOT_FOUND.items():
                    if value.startswith(prefix):
                        return code, message.format(id=value)
    return None


# ---------------------------------------------------------------------------------------------
# Deregistered images still listed; snapshots still in use after their image went
# ---------------------------------------------------------------------------------------------
def deregistered(backend: Any, ami: Any, binned: bool, kept_snapshots: list[str]) -> None:
    """An image was deregistered: still listed (`deregistered_listed`) unless the bin took it, and
    the snapshots it leaves behind still in use for a while (`in_use_after_deregister`)."""
    account, region = backend.account_id, backend.region_name
    listed = _knob(account, "deregistered_listed")
    in_use = _knob(account, "in_use_after_deregister")
    with _lock:
        if listed and not binned:
            ghost = copy.copy(ami)
            ghost.__dict__ = dict(ami.__dict__)
            ghost.state = "deregistered"
            _ghosts.setdefault((account, region), {})[ami.id] = (ghost, _now() + float(listed))
        if in_use:
            freed = _freed.setdefault((account, region), {})
            for snapshot_id in kept_snapshots:
                freed[snapshot_id] = (_now() + float(in_use), ami.id)


def ghosts(backend: Any) -> list[Any]:
    """Deregistered images DescribeImages still lists for this account and region."""
    key = (backend.account_id, backend.region_name)
    with _lock:
        listed = _ghosts.get(key, {})
        for image_id in [i for i, (_, until) in listed.items() if _now() >= until]:
            del listed[image_id]
        return [ghost for ghost, _ in listed.values()]


def still_in_use(backend: Any, snapshot_id: str) -> str | None:
    """The deregistered image AWS still counts as using the snapshot, or None."""
    key = (backend.account_id, backend.region_name)
    with _lock:
        entry = _freed.get(key, {}).get(snapshot_id)
        if entry is None or _now() >= entry[0]:
            return None
        return entry[1]


# ---------------------------------------------------------------------------------------------
# Reads right after a change show the old value
# ---------------------------------------------------------------------------------------------
def changing(backend: Any, resource_id: str, before: Any) -> None:
    """Called before a permission change with the value as it was: shown for `read_back_lag`."""
    lag = _knob(backend.account_id, "read_back_lag")
    if not lag:
        return
    key = (backend.account_id, backend.region_name, resource_id)
    with _lock:
        earlier = _lagging.get(key)
        # A change within the window of another: the older value is still what reads show.
        old = earlier[0] if earlier and _now() < earlier[1] else before
        _lagging[key] = (old, _now() + float(lag))


def lagging(backend: Any, resource_id: str) -> tuple[bool, Any]:
    key = (backend.account_id, backend.region_name, resource_id)
    with _lock:
        entry = _lagging.get(key)
        if entry is None:
            return False, None
        if _now() >= entry[1]:
            del _lagging[key]
            return False, None
        return True, copy.deepcopy(entry[0])


# ---------------------------------------------------------------------------------------------
# SSM aws:ec2:image parameters are validated asynchronously
# ---------------------------------------------------------------------------------------------
def image_validation_delay(account: str) -> float:
    return float(_knob(account, "ssm_image_validation") or 0)


def later(seconds: float, work: Any) -> None:
    """Runs `work` after `seconds` (at once when 0), under the emulator's lock."""
    def run() -> None:
        with _lock:
            try:
                work()
            except Exception:  # noqa: BLE001 - an emulator fault: say so in the server's log
                import traceback

                traceback.print_exc()

    if seconds <= 0:
        run()
        return
    timer = threading.Timer(seconds, run)
    timer.daemon = True
    timer.start()


def apply() -> None:
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.elastic_block_store import Snapshot

    Ami.state = _timed("state", "pending")  # type: ignore[assignment]

    def state_reason(self: Any) -> Any:
        _ = self.state  # settles the timer first: responses may read the reason before the state
        return self.__dict__.get("_state_reason_value")

    Ami.state_reason = property(state_reason)  # type: ignore[attr-defined]
    Snapshot.status = _timed("status", "pending")  # type: ignore[assignment]
