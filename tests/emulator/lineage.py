"""Where images come from, images AWS services own, time-based copies and Allowed AMIs: what moto
lacks of each.

AWS behaviour reproduced (EC2 API reference and user guide, 2025-11):
- DescribeImages' `SourceImageId` / `SourceImageRegion`: set on images made by CreateImage (the AMI
  the instance was launched from, in its region) and CopyImage (the source and its region); absent
  on RegisterImage images. Filters `source-image-id`, `source-image-region`. `ImageOwnerAlias`
  (`amazon`, `aws-backup-vault`, `aws-marketplace`) where one is assigned.
- GetImageAncestry(ImageId): the chain from that image to its root, one entry per image
  (`ImageId`, `CreationDate`, `ImageOwnerAlias`, `SourceImageId`, `SourceImageRegion`), across
  regions and accounts. The image must be one the caller can see in the region
  (`InvalidAMIID.NotFound`, `InvalidAMIID.Malformed`). The source recorded on an image outlives its
  parent ("the new AMI retains the ID and Region of its source"): a chain runs on through a
  deregistered ancestor (as a third-party test of the feature, dev.classmethod.jp 2025-11, found).
  It ends at a root: a verified provider's public image (owner alias `amazon`, `aws-marketplace`),
  an image with no recorded source, or the 50th entry.
- CopyImage `SnapshotCopyCompletionDurationMinutes`: a time-based copy, 15 to 2880 minutes (48 h) in
  15-minute steps, else `InvalidParameterValue`; the copy's snapshots report it as
  `CompletionDurationMinutes` (DescribeSnapshots).
- Images AWS services make: AWS Backup tags its AMIs `aws:backup:source-resource` (reserved: no one
  else can set `aws:` tags) and EC2 refuses to deregister them (`InvalidParameterValue`, "managed
  by the AWS Backup service": by analogy with DeleteSnapshot's documented answer for Backup
  snapshots); Data Lifecycle Manager tags `aws:dlm:lifecycle-policy-id`; EC2 Image Builder tags
  `CreatedBy` = `EC2 Image Builder` and `Ec2ImageBuilderArn`.
- Allowed AMIs, per account and region: EnableAllowedImagesSettings (`enabled` | `audit-mode`),
  DisableAllowedImagesSettings, ReplaceImageCriteriaInAllowedImagesSettings (1-10 criteria;
  `ImageProviders` up to 200, `ImageNames` up to 50, `MarketplaceProductCodes` up to 50,
  `CreationDateCondition.MaximumDaysSinceCreated`, `DeprecationTimeCondition
  .MaximumDaysSinceDeprecated`), GetAllowedImagesSettings (`State` default `disabled`,
  `ImageCriteria`, `ManagedBy` `account`).

Test convention (admin route, not AWS): POST /_emulator/managed {"account", "region", "image_id",
"service": "backup" | "dlm" | "image-builder"} marks an image as made by that service, as the
service itself would have.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2 import models as ec2_models
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, MalformedAMIIdError

_lock = threading.Lock()
# image id -> what AWS keeps of where it came from, kept after the image is deregistered.
_sources: dict[str, dict[str, Any]] = {}
# image ids AWS Backup manages.
_backup: set[str] = set()
# (account, region) -> Allowed AMIs settings.
_allowed: dict[tuple[str, str], dict[str, Any]] = {}

COMPLETION_MINUTES = (15, 2880, 15)
# The longest ancestry list AWS returns.
MAX_ANCESTRY = 50
BACKUP_MESSAGE = (
    "This image is managed by the AWS Backup service and cannot be deregistered via EC2 APIs. "
    "If you wish to delete this image, please do so via the Backup console."
)


class _Error(EC2ClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def made(ami: Any, region: str, source_id: str | None, source_region: str | None) -> None:
    """A new image made from `source_id` in `source_region` (CreateImage, CopyImage)."""
    ami.source_image_id = source_id
    ami.source_image_region = source_region if source_id else None
    with _lock:
        _sources[ami.id] = {
            "region": region,
            "created": ami.creation_date,
            "source_id": source_id,
            "source_region": ami.source_image_region,
            "owner_alias": getattr(ami, "owner_alias", None),
        }


def filter_value(ami: Any, name: str) -> Any:
    """DescribeImages filters moto lacks, or the sentinel `None` to let moto answer."""
    if name == "source-image-id":
        return getattr(ami, "source_image_id", None)
    if name == "source-image-region":
        return getattr(ami, "source_image_region", None)
    return _NOT_OURS


_NOT_OURS = object()


def completion_minutes(raw: Any) -> int | None:
    """CopyImage's SnapshotCopyCompletionDurationMinutes, checked as AWS checks it."""
    if raw is None:
        return None
    low, high, step = COMPLETION_MINUTES
    try:
        minutes = int(raw)
    except (TypeError, ValueError):
        minutes = -1
    if not (low <= minutes <= high and minutes % step == 0):
        raise _Error(
            "InvalidParameterValue",
            f"Value ({raw}) for parameter SnapshotCopyCompletionDurationMinutes is invalid. "
            f"The completion duration must be between {low} and {high} minutes, in increments of {step} minutes.",
        )
    return minutes


# ---------------------------------------------------------------------------------------------
# GetImageAncestry
# ---------------------------------------------------------------------------------------------
def _find_image(image_id: str, region: str | None) -> Any:
    for regions in list(ec2_models.ec2_backends.values()):
        names = [region] if region else list(regions.keys())
        for name in names:
            if name not in regions.keys():
                continue
            ami = dict.__getitem__(regions, name).amis.get(image_id)
            if ami is not None:
                return ami
    return None


def _entry(image_id: str, region: str | None) -> dict[str, Any] | None:
    with _lock:
        record = dict(_sources.get(image_id) or {})
    ami = _find_image(image_id, region or record.get("region"))
    if not record and ami is None:
        return None
    entry: dict[str, Any] = {"ImageId": image_id}
    created = record.get("created") or (ami.creation_date if ami is not None else None)
    if isinstance(created, datetime):
        entry["CreationDate"] = created
    alias = (ami.owner_alias if ami is not None else None) or record.get("owner_alias")
    if alias:
        entry["ImageOwnerAlias"] = alias
    if record.get("source_id"):
        entry["SourceImageId"] = record["source_id"]
        entry["SourceImageRegion"] = record["source_region"]
    return entry


def get_image_ancestry(self: Any) -> ActionResult:
    import fidelity

    image_id = self._get_param("ImageId")
    if not image_id:
        raise _Error("MissingParameter", "The request must contain the parameter ImageId")
    if not re.fullmatch(r"ami-[0-9a-f]{8,17}", image_id):
        raise MalformedAMIIdError([image_id])
    self.error_on_dryrun()
    backend = self.ec2_backend
    if not any(a.id == image_id for a in fidelity.visible_images(backend)):
        raise InvalidAMIIdError([image_id])
    entries = []
    current: str | None = image_id
    region: str | None = backend.region_name
    seen: set[str] = set()
    while current and current not in seen and len(entries) < MAX_ANCESTRY:
        seen.add(current)
        entry = _entry(current, region)
        if entry is None:
            break
        entries.append(entry)
        # A verified provider's public image is a root, whatever it came from.
        if entry.get("ImageOwnerAlias") in ("amazon", "aws-marketplace"):
            break
        current, region = entry.get("SourceImageId"), entry.get("SourceImageRegion")
    return ActionResult({"ImageAncestryEntries": entries})


# ---------------------------------------------------------------------------------------------
# Images AWS services own
# ---------------------------------------------------------------------------------------------
def mark_managed(account: str, region: str, image_id: str, service: str) -> None:
    backend = ec2_models.ec2_backends[account][region]
    if image_id not in backend.amis:
        raise KeyError(image_id)
    if service == "backup":
        tags = {"aws:backup:source-resource": f"{image_id}:backup-1"}
        with _lock:
            _backup.add(image_id)
    elif service == "dlm":
        tags = {
            "aws:dlm:lifecycle-policy-id": "policy-0123456789abcdef0",
            "aws:dlm:lifecycle-schedule-name": "Default Schedule",
        }
    elif service == "image-builder":
        tags = {
            "CreatedBy": "EC2 Image Builder",
            "Ec2ImageBuilderArn": f"arn:aws:imagebuilder:{region}:{account}:image/demo/1.0.0/1",
        }
    else:
        raise ValueError(f"unknown service {service!r}: backup, dlm or image-builder")
    backend.create_tags([image_id], tags)


def refuse_managed_deregistration(image_id: str) -> None:
    with _lock:
        managed = image_id in _backup
    if managed:
        raise _Error("InvalidParameterValue", BACKUP_MESSAGE)


# ---------------------------------------------------------------------------------------------
# Allowed AMIs
# ---------------------------------------------------------------------------------------------
def _settings(self: Any) -> dict[str, Any]:
    key = (self.current_account, self.region)
    with _lock:
        return _allowed.setdefault(key, {"State": "disabled", "ImageCriteria": []})


def enable_allowed_images_settings(self: Any) -> ActionResult:
    state = self._get_param("AllowedImagesSettingsState")
    if state not in ("enabled", "audit-mode"):
        raise _Error("InvalidParameterValue", f"Invalid value '{state}' for AllowedImagesSettingsState.")
    self.error_on_dryrun()
    settings = _settings(self)
    with _lock:
        settings["State"] = state
    return ActionResult({"AllowedImagesSettingsState": state})


def disable_allowed_images_settings(self: Any) -> ActionResult:
    self.error_on_dryrun()
    settings = _settings(self)
    with _lock:
        settings["State"] = "disabled"
    return ActionResult({"AllowedImagesSettingsState": "disabled"})


_CRITERION_LISTS = {"ImageProviders": 200, "ImageNames": 50, "MarketplaceProductCodes": 50}


def replace_image_criteria(self: Any) -> ActionResult:
    criteria = self._get_param("ImageCriteria", []) or []
    if len(criteria) > 10:
        raise _Error("InvalidParameterValue", "You can specify at most 10 image criteria.")
    cleaned = []
    for criterion in criteria:
        out: dict[str, Any] = {}
        for key, limit in _CRITERION_LISTS.items():
            values = criterion.get(key) or []
            if len(values) > limit:
                raise _Error("InvalidParameterValue", f"{key} can contain at most {limit} values.")
            if values:
                out[key] = list(values)
        for key, field in (
            ("CreationDateCondition", "MaximumDaysSinceCreated"),
            ("DeprecationTimeCondition", "MaximumDaysSinceDeprecated"),
        ):
            condition = criterion.get(key) or {}
            if field in condition:
                out[key] = {field: int(condition[field])}
        if not out:
            raise _Error("InvalidParameterValue", "An image criterion must specify at least one condition.")
        cleaned.append(out)
    self.error_on_dryrun()
    settings = _settings(self)
    with _lock:
        settings["ImageCriteria"] = cleaned
    return ActionResult({"ReturnValue": True})


def get_allowed_images_settings(self: Any) -> ActionResult:
    self.error_on_dryrun()
    settings = _settings(self)
    with _lock:
        return ActionResult(
            {
                "State": settings["State"],
                "ImageCriteria": [dict(c) for c in settings["ImageCriteria"]],
                "ManagedBy": "account",
            }
        )


def apply() -> None:
    from moto.ec2.models.amis import Ami
    from moto.ec2.responses.amis import AmisResponse

    Ami.image_owner_alias = property(lambda self: self.owner_alias)  # type: ignore[attr-defined]
    Ami.source_image_id = None  # type: ignore[attr-defined]
    Ami.source_image_region = None  # type: ignore[attr-defined]
    original_filter = Ami.get_filter_value

    def get_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        value = filter_value(self, filter_name)
        if value is _NOT_OURS:
            return original_filter(self, filter_name, method_name)
        return value

    Ami.get_filter_value = get_filter_value
    AmisResponse.get_image_ancestry = get_image_ancestry
    AmisResponse.enable_allowed_images_settings = enable_allowed_images_settings
    AmisResponse.disable_allowed_images_settings = disable_allowed_images_settings
    AmisResponse.replace_image_criteria_in_allowed_images_settings = replace_image_criteria
    AmisResponse.get_allowed_images_settings = get_allowed_images_settings
