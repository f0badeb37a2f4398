"""Recycle Bin: the `rbin` service (retention rules) and EC2's side of it, neither of which moto has.

AWS behaviour reproduced (Recycle Bin API reference; EC2 API reference):
- rbin (restJson1): CreateRule `POST /rules`, ListRules `POST /list-rules`, GetRule
  `GET /rules/{id}`, DeleteRule `DELETE /rules/{id}`. `ResourceType` `EC2_IMAGE` or `EBS_SNAPSHOT`;
  `RetentionPeriod` 1-365 `DAYS`; a tag-level rule has `ResourceTags` (key, optional value; up to
  50); a region-level rule has none and may have `ExcludeResourceTags` (not both); a rule may be
  locked (`LockConfiguration.UnlockDelay` 7-30 days): a locked rule cannot be deleted. ListRules
  requires `ResourceType`, `MaxResults` 1-1000 with `NextToken`, and returns summaries without the
  tags (GetRule has them). Errors: `ValidationException` (400), `ResourceNotFoundException` (404),
  `ConflictException` (409).
- A resource is retained when a rule of its type matches: a tag-level rule whose tags it has one
  of, or a region-level rule none of whose exclusion tags it has. With several, the longest
  retention wins. The rule applies from creation (moto-speed: no `pending` phase).
- DeregisterImage / DeleteSnapshot of a retained resource put it in the bin until enter +
  retention; afterwards it is gone for good. DeleteAssociatedSnapshots deletes (and bins)
  snapshots the same way.
- EC2: ListImagesInRecycleBin (`ImageId.N` up to 20, `MaxResults` 1-1000), ListSnapshotsInRecycleBin
  (`MaxResults` 5-1000), RestoreImageFromRecycleBin, RestoreSnapshotFromRecycleBin: the resource
  comes back with the same id, its tags and its state (an image `available`, a snapshot
  `completed`). Restoring what is not in the bin: `InvalidAMIID.NotFound` /
  `InvalidSnapshot.NotFound`.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError

import fidelity
import timing

RESOURCE_TYPES = ("EC2_IMAGE", "EBS_SNAPSHOT")

_lock = threading.Lock()
# (account, region) -> {rule id: rule}
_rules: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
# (account, region) -> {resource id: {"resource", "tags", "enter", "exit"}}
_bin_images: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
_bin_snapshots: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


class _Error(EC2ClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


def _now() -> datetime:
    return utcnow().replace(tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------------------------------------
# Rules and matching
# ---------------------------------------------------------------------------------------------
def _matches(rule: dict[str, Any], tags: dict[str, str]) -> bool:
    def has(tag: dict[str, str]) -> bool:
        key = tag["ResourceTagKey"]
        value = tag.get("ResourceTagValue")
        return key in tags and (value is None or tags[key] == value)

    if rule["ResourceTags"]:
        return any(has(tag) for tag in rule["ResourceTags"])
    return not any(has(tag) for tag in rule["ExcludeResourceTags"])


def retention_days(account: str, region: str, resource_type: str, tags: dict[str, str]) -> int | None:
    """The retention the resource gets in the bin, or None when no rule retains it."""
    with _lock:
        rules = list(_rules.get((account, region), {}).values())
    days = [
        rule["RetentionPeriod"]["RetentionPeriodValue"]
        for rule in rules
        if rule["ResourceType"] == resource_type and _matches(rule, tags)
    ]
    return max(days) if days else None


def _purge(store: dict[tuple[str, str], dict[str, dict[str, Any]]], key: tuple[str, str]) -> dict[str, dict[str, Any]]:
    now = _now()
    entries = store.setdefault(key, {})
    for resource_id in [r for r, e in entries.items() if e["exit"] <= now]:
        entries.pop(resource_id)
    return entries


def _tags_of(backend: Any, resource_id: str) -> dict[str, str]:
    return dict(backend.tags.get(resource_id, {}))


def _bin(store: dict[tuple[str, str], dict[str, dict[str, Any]]], backend: Any, resource_type: str,
         resource: Any, tags: dict[str, str]) -> bool:
    days = retention_days(backend.account_id, backend.region_name, resource_type, tags)
    if days is None:
        return False
    now = _now()
    with _lock:
        _purge(store, (backend.account_id, backend.region_name))[resource.id] = {
            "resource": resource,
            "tags": tags,
            "enter": now,
            "exit": now + timedelta(days=days),
        }
    return True


def bin_image(backend: Any, ami: Any, tags: dict[str, str]) -> bool:
    """Called with an image just deregistered: keeps it in the bin if a rule retains it."""
    # The Recycle Bin keeps EBS-backed images only.
    if getattr(ami, "root_device_type", "ebs") == "instance-store":
        return False
    return _bin(_bin_images, backend, "EC2_IMAGE", ami, tags)


def bin_snapshot(backend: Any, snapshot: Any, tags: dict[str, str]) -> bool:
    """Called with a snapshot just deleted: keeps it in the bin if a rule retains it."""
    return _bin(_bin_snapshots, backend, "EBS_SNAPSHOT", snapshot, tags)


# ---------------------------------------------------------------------------------------------
# The rbin service (restJson1), served by server.py for requests signed for `rbin`
# ---------------------------------------------------------------------------------------------
class _RbinError(Exception):
    def __init__(self, status: str, code: str, message: str, reason: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


def _invalid(message: str, reason: str = "INVALID_PARAMETER_VALUE") -> _RbinError:
    return _RbinError("400 Bad Request", "ValidationException", message, reason)


def _rule_out(rule: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    out = {
        "Identifier": rule["Identifier"],
        "Description": rule["Description"],
        "ResourceType": rule["ResourceType"],
        "RetentionPeriod": rule["RetentionPeriod"],
        "ResourceTags": rule["ResourceTags"],
        "ExcludeResourceTags": rule["ExcludeResourceTags"],
        "Status": "available",
        "LockState": rule["LockState"],
        "RuleArn": f"arn:aws:rbin:{region}:{account}:rule/{rule['Identifier']}",
    }
    if rule.get("LockConfiguration"):
        out["LockConfiguration"] = rule["LockConfiguration"]
    return out


def _validate_tags(tags: Any, field: str) -> list[dict[str, str]]:
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > 50:
        raise _invalid(f"{field} must be a list of at most 50 tags")
    for tag in tags:
        if not isinstance(tag, dict) or not tag.get("ResourceTagKey"):
            raise _invalid(f"{field}: every tag needs a ResourceTagKey")
    return [
        {k: v for k, v in tag.items() if k in ("ResourceTagKey", "ResourceTagValue")} for tag in tags
    ]


def _create_rule(key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resource_type = body.get("ResourceType")
    if resource_type not in RESOURCE_TYPES:
        raise _invalid(f"ResourceType must be one of {', '.join(RESOURCE_TYPES)}")
    period = body.get("RetentionPeriod") or {}
    value = period.get("RetentionPeriodValue")
    if period.get("RetentionPeriodUnit") != "DAYS" or not isinstance(value, int) or not 1 <= value <= 365:
        raise _invalid("RetentionPeriod must be 1 to 365 DAYS")
    resource_tags = _validate_tags(body.get("ResourceTags"), "ResourceTags")
    exclude = _validate_tags(body.get("ExcludeResourceTags"), "ExcludeResourceTags")
    if resource_tags and exclude:
        raise _invalid("ExcludeResourceTags can only be used with region-level retention rules")
    lock = body.get("LockConfiguration")
    if lock is not None:
        delay = (lock.get("UnlockDelay") or {}).get("UnlockDelayValue")
        if not isinstance(delay, int) or not 7 <= delay <= 30:
            raise _invalid("UnlockDelay must be 7 to 30 DAYS")
        if resource_tags:
            raise _invalid("Only region-level retention rules can be locked")
    rule = {
        "Identifier": uuid.uuid4().hex[:11],
        "Description": body.get("Description", ""),
        "ResourceType": resource_type,
        "RetentionPeriod": {"RetentionPeriodValue": value, "RetentionPeriodUnit": "DAYS"},
        "ResourceTags": resource_tags,
        "ExcludeResourceTags": exclude,
        "LockConfiguration": lock,
        "LockState": "locked" if lock else None,
    }
    with _lock:
        _rules.setdefault(key, {})[rule["Identifier"]] = rule
    return rule


def _list_rules(key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resource_type = body.get("ResourceType")
    if resource_type not in RESOURCE_TYPES:
        raise _invalid("ResourceType is required: EC2_IMAGE or EBS_SNAPSHOT", "MISSING_PARAMETER")
    max_results = body.get("MaxResults", 1000)
    if not isinstance(max_results, int) or not 1 <= max_results <= 1000:
        raise _invalid("MaxResults must be 1 to 1000")
    with _lock:
        rules = sorted(_rules.get(key, {}).values(), key=lambda r: r["Identifier"])
    rules = [r for r in rules if r["ResourceType"] == resource_type]
    if body.get("LockState"):
        rules = [r for r in rules if r["LockState"] == body["LockState"]]
    start = 0
    if body.get("NextToken"):
        try:
            start = int(body["NextToken"])
        except ValueError:
            raise _invalid("NextToken is not valid")
    max_results = fidelity.page_size(key[0], max_results)
    page = rules[start : start + max_results]
    out: dict[str, Any] = {
        "Rules": [
            {
                "Identifier": r["Identifier"],
                "Description": r["Description"],
                "RetentionPeriod": r["RetentionPeriod"],
                **({"LockState": r["LockState"]} if r["LockState"] else {}),
                "RuleArn": f"arn:aws:rbin:{key[1]}:{key[0]}:rule/{r['Identifier']}",
            }
            for r in page
        ]
    }
    if start + max_results < len(rules):
        out["NextToken"] = str(start + max_results)
    return out


def _get_rule(key: tuple[str, str], rule_id: str) -> dict[str, Any]:
    with _lock:
        rule = _rules.get(key, {}).get(rule_id)
    if rule is None:
        raise _RbinError("404 Not Found", "ResourceNotFoundException", f"Rule {rule_id} not found", "RULE_NOT_FOUND")
    return rule


def serve(environ: dict[str, Any], start_response: Any, account: str, region: str) -> list[bytes]:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    key = (account, region)
    try:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _invalid("the request body is not JSON")
        if method == "POST" and path == "/rules":
            status, out = "201 Created", _rule_out(_create_rule(key, body), account, region)
        elif method == "POST" and path == "/list-rules":
            status, out = "200 OK", _list_rules(key, body)
        elif path.startswith("/rules/") and method == "GET":
            status, out = "200 OK", _rule_out(_get_rule(key, path[len("/rules/") :]), account, region)
        elif path.startswith("/rules/") and method == "DELETE":
            rule = _get_rule(key, path[len("/rules/") :])
            if rule["LockState"] == "locked":
                raise _RbinError("409 Conflict", "ConflictException", "The rule is locked", "INVALID_RULE_STATE")
            with _lock:
                _rules[key].pop(rule["Identifier"], None)
            status, out = "204 No Content", None
        else:
            raise _RbinError("404 Not Found", "UnknownOperationException", f"{method} {path} is not an rbin operation")
    except _RbinError as err:
        payload = {"message": err.message, "Message": err.message}
        if err.reason:
            payload["Reason"] = err.reason
        data = json.dumps(payload).encode()
        start_response(
            err.status,
            [
                ("Content-Type", "application/json"),
                ("X-Amzn-ErrorType", err.code),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("Content-Length", str(len(data))),
            ],
        )
        return [data]
    data = b"" if out is None else json.dumps(out).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(data))),
        ],
    )
    return [data]


def action_of(method: str, path: str) -> str:
    """The rbin action a request is, for the request counters and fault injection."""
    if path == "/rules":
        return "CreateRule" if method == "POST" else "Unknown"
    if path == "/list-rules":
        return "ListRules"
    if path.startswith("/rules/"):
        return {"GET": "GetRule", "DELETE": "DeleteRule", "PATCH": "UpdateRule"}.get(method, "Unknown")
    return "Unknown"


# ---------------------------------------------------------------------------------------------
# EC2 actions on the bin
# ---------------------------------------------------------------------------------------------
def _max_results(self: Any, low: int, high: int) -> int:
    raw = self._get_param("MaxResults")
    if raw is None:
        return 1000
    value = int(raw)
    if not low <= value <= high:
        raise _Error("InvalidParameterValue", f"MaxResults must be between {low} and {high}")
    return value


def list_images_in_recycle_bin(self: Any) -> ActionResult:
    backend = self.ec2_backend
    wanted = self._get_param("ImageIds", [])
    if len(wanted) > 20:
        raise _Error("InvalidParameterValue", "You can specify up to 20 image IDs")
    size = _max_results(self, 1, 1000)
    self.error_on_dryrun()
    with _lock:
        entries = dict(_purge(_bin_images, (backend.account_id, backend.region_name)))
    items = [
        {
            "ImageId": image_id,
            "Name": entry["resource"].name,
            "Description": entry["resource"].description,
            "RecycleBinEnterTime": _iso(entry["enter"]),
            "RecycleBinExitTime": _iso(entry["exit"]),
        }
        for image_id, entry in sorted(entries.items())
        if not wanted or image_id in wanted
    ]
    return fidelity.paged_result(self, items, size, "Images")


def list_snapshots_in_recycle_bin(self: Any) -> ActionResult:
    backend = self.ec2_backend
    wanted = self._get_param("SnapshotIds", [])
    size = _max_results(self, 5, 1000)
    self.error_on_dryrun()
    with _lock:
        entries = dict(_purge(_bin_snapshots, (backend.account_id, backend.region_name)))
    items = [
        {
            "SnapshotId": snapshot_id,
            "Description": entry["resource"].description,
            "VolumeId": entry["resource"].volume.id if entry["resource"].volume else None,
            "RecycleBinEnterTime": _iso(entry["enter"]),
            "RecycleBinExitTime": _iso(entry["exit"]),
        }
        for snapshot_id, entry in sorted(entries.items())
        if not wanted or snapshot_id in wanted
    ]
    return fidelity.paged_result(self, items, size, "Snapshots")


def restore_image_from_recycle_bin(self: Any) -> ActionResult:
    backend = self.ec2_backend
    image_id = self._get_param("ImageId")
    self.error_on_dryrun()
    with _lock:
        entry = _purge(_bin_images, (backend.account_id, backend.region_name)).pop(image_id, None)
    if entry is None:
        raise _Error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' is not in the Recycle Bin")
    ami = entry["resource"]
    ami.state = "available"
    backend.amis[image_id] = ami
    if image_id in backend.deleted_amis:
        backend.deleted_amis.remove(image_id)
    if entry["tags"]:
        backend.create_tags([image_id], entry["tags"])
    # Back under its old id, which the next calls may not know for a while.
    timing.made_image(backend, ami, [], pends=False)
    return ActionResult({"Return": True})


def restore_snapshot_from_recycle_bin(self: Any) -> ActionResult:
    backend = self.ec2_backend
    snapshot_id = self._get_param("SnapshotId")
    self.error_on_dryrun()
    with _lock:
        entry = _purge(_bin_snapshots, (backend.account_id, backend.region_name)).pop(snapshot_id, None)
    if entry is None:
        raise _Error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' is not in the Recycle Bin")
    snapshot = entry["resource"]
    backend.snapshots[snapshot_id] = snapshot
    if entry["tags"]:
        backend.create_tags([snapshot_id], entry["tags"])
    return ActionResult(
        {
            "SnapshotId": snapshot_id,
            "Description": snapshot.description,
            "OwnerId": snapshot.owner_id,
            "State": "completed",
            "VolumeSize": snapshot.volume.size if snapshot.volume else None,
            "Encrypted": bool(snapshot.encrypted),
        }
    )


def apply() -> None:
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    AmisResponse.list_images_in_recycle_bin = list_images_in_recycle_bin
    AmisResponse.restore_image_from_recycle_bin = restore_image_from_recycle_bin
    ElasticBlockStore.list_snapshots_in_recycle_bin = list_snapshots_in_recycle_bin
    ElasticBlockStore.restore_snapshot_from_recycle_bin = restore_snapshot_from_recycle_bin
