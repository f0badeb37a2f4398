"""Fidelity layer: makes moto 5.2.5 behave like AWS for the EC2/S3 calls `ami` relies on.

Stock moto has gaps that would make a planner look safe when it is not (see shared EMULATOR.md).
Each patch below names the AWS behaviour it reproduces. Nothing here makes the emulator more lenient
than AWS; where AWS refuses something, so does the patched emulator.

Test conventions (not AWS behaviour, documented in tests/emulator/README.md):
- an access key id ending in 12 digits belongs to that account id, so each test can use its own account;
- the admin routes under /_emulator/ (see server.py) read counters, backdate timestamps and set page sizes.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2 import models as ec2_models
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidAMIIdError,
    InvalidSnapshotIdError,
    InvalidSnapshotInUse,
    MissingParameterError,
    UnvailableAMIIdError,
)
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

import lineage
import recycle_bin
import snapshot_locks
import timing
import usage_reports

# Per-account emulator settings, written by the admin routes. Keyed by account id.
_lock = threading.Lock()
_page_size_cap: dict[str, int] = {}
# Scripted DeleteSnapshotResults return codes per account, {snapshot id: code}: DeregisterImage
# reports that code for the snapshot and leaves it, as AWS does for a code other than success.
_snapshot_results: dict[str, dict[str, str]] = {}


def set_snapshot_results(account_id: str, results: dict[str, str] | None) -> None:
    with _lock:
        if results:
            _snapshot_results[account_id] = dict(results)
        else:
            _snapshot_results.pop(account_id, None)


def set_page_size_cap(account_id: str, size: int | None) -> None:
    with _lock:
        if size:
            _page_size_cap[account_id] = size
        else:
            _page_size_cap.pop(account_id, None)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Error(EC2ClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


# ---------------------------------------------------------------------------------------------
# Accounts: an access key id ending in 12 digits maps to that account (test isolation).
# AWS maps every access key to exactly one account; moto maps unknown keys to 123456789012.
# ---------------------------------------------------------------------------------------------
_ACCOUNT_SUFFIX = re.compile(r"(\d{12})$")


def _patch_accounts() -> None:
    import moto.iam.models as iam_models

    original = iam_models.get_account_id_from

    def get_account_id_from(access_key: str) -> str:
        account = original(access_key)
        if account == iam_models.DEFAULT_ACCOUNT_ID:
            match = _ACCOUNT_SUFFIX.search(access_key or "")
            if match:
                return match.group(1)
        return account

    iam_models.get_account_id_from = get_account_id_from


# ---------------------------------------------------------------------------------------------
# Tags: moto scans every tag of the region for each resource (quadratic DescribeImages).
# AWS: per-resource tag lookup; same result, linear time.
# ---------------------------------------------------------------------------------------------
def _get_tags(self: Any) -> list[dict[str, str]]:
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags = self.ec2_backend.tags.get(resource_id, {})
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type}
        for k, v in list(tags.items())
    ]


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
_original_ami_init = Ami.__init__


def _ami_init(self: Ami, *args: Any, **kwargs: Any) -> None:
    _original_ami_init(self, *args, **kwargs)
    # AWS: images made by CreateImage/CopyImage of EBS-backed instances are `ebs`, not `standard`.
    if self.root_device_type == "standard":
        self.root_device_type = "ebs"
    self._custom_bdm: list[dict[str, Any]] | None = None
    self.deprecation_time: str | None = None
    self.deregistration_protection: str = "disabled"
    self._protection_cooldown_until: datetime | None = None
    self.ena_support: bool | None = None
    self.tpm_support: str | None = None
    self.imds_support: str | None = None
    self.last_launched_time: str | None = None


def _ami_block_device_mappings(self: Ami) -> list[dict[str, Any]]:
    # AWS: the mapping given to RegisterImage is kept as given (moto invents one 15 GiB volume).
    if self._custom_bdm is not None:
        return self._custom_bdm
    if self.ebs_snapshot is None:
        return []
    return [
        {
            "DeviceName": self.root_device_name,
            "Ebs": {
                "SnapshotId": self.ebs_snapshot.id,
                "VolumeSize": 15,
                "DeleteOnTermination": True,
                "VolumeType": "standard",
                "Encrypted": False,
            },
        }
    ]


def _ami_snapshot_ids(ami: Ami) -> list[str]:
    ids = []
    for mapping in ami.block_device_mappings:
        snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
        if snapshot_id:
            ids.append(snapshot_id)
    return ids


def _is_deprecated(ami: Ami) -> bool:
    if not ami.deprecation_time:
        return False
    return ami.deprecation_time <= _iso(utcnow())


def _protected(ami: Ami) -> bool:
    if ami.deregistration_protection.startswith("enabled"):
        return True
    return ami._protection_cooldown_until is not None and ami._protection_cooldown_until > utcnow()


def _check_name_free(backend: Any, name: str | None) -> None:
    # AWS: an AMI name is unique per account and region.
    if not name:
        raise MissingParameterError("Name")
    for ami in backend.amis.values():
        if ami.name == name and ami.owner_id == backend.account_id:
            raise _Error(
                "InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}"
            )


def _drop_auto_snapshot(backend: Any, ami: Ami) -> None:
    # moto's Ami() always fabricates a snapshot; AWS creates none for RegisterImage.
    if ami.ebs_snapshot is not None:
        backend.snapshots.pop(ami.ebs_snapshot.id, None)
        ami.ebs_snapshot = None


def _register_image(self: AmiBackend, **params: Any) -> Ami:
    """RegisterImage as on AWS: keeps mappings, root device name, ImageLocation and tags."""
    from moto.ec2.utils import random_ami_id

    name = params.get("name")
    _check_name_free(self, name)
    image_location = params.get("image_location")
    root_device_name = params.get("root_device_name")
    mappings_in = params.get("block_device_mappings") or []

    mappings: list[dict[str, Any]] = []
    for mapping in mappings_in:
        device = mapping.get("DeviceName")
        if not device:
            raise MissingParameterError("BlockDeviceMapping.DeviceName")
        out: dict[str, Any] = {"DeviceName": device}
        ebs = mapping.get("Ebs")
        if ebs is not None:
            snapshot_id = ebs.get("SnapshotId")
            ebs_out: dict[str, Any] = {
                "DeleteOnTermination": ebs.get("DeleteOnTermination", True),
                "VolumeType": ebs.get("VolumeType") or "gp2",
                "Encrypted": False,
            }
            if snapshot_id:
                # AWS: an unknown snapshot is refused, nothing is registered.
                snapshot = self.snapshots.get(snapshot_id)
                if snapshot is None or snapshot.owner_id != self.account_id:
                    raise _Error(
                        "InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist."
                    )
                ebs_out["SnapshotId"] = snapshot_id
                ebs_out["VolumeSize"] = int(ebs.get("VolumeSize") or snapshot.volume_size)
                ebs_out["Encrypted"] = bool(snapshot.encrypted)
            elif ebs.get("VolumeSize"):
                ebs_out["VolumeSize"] = int(ebs["VolumeSize"])
            out["Ebs"] = ebs_out
        if mapping.get("VirtualName"):
            out["VirtualName"] = mapping["VirtualName"]
        if mapping.get("NoDevice") is not None:
            out["NoDevice"] = ""
        mappings.append(out)

    if image_location:
        root_device_type = "instance-store"
        root_device_name = root_device_name or "/dev/sda1"
    else:
        if not mappings:
            raise MissingParameterError("ImageLocation or BlockDeviceMapping")
        root_device_name = root_device_name or mappings[0]["DeviceName"]
        root = next((m for m in mappings if m["DeviceName"] == root_device_name), None)
        if root is None or "SnapshotId" not in (root.get("Ebs") or {}):
            raise _Error(
                "InvalidBlockDeviceMapping",
                f"The device {root_device_name} must have a snapshot id in its block device mapping.",
            )
        root_device_type = "ebs"

    ami = Ami(
        self,
        random_ami_id(),
        name=name,
        description=params.get("description"),
        architecture=params.get("architecture") or "x86_64",
        virtualization_type=params.get("virtualization_type") or "hvm",
        image_location=image_location,
        root_device_name=root_device_name,
        boot_mode=params.get("boot_mode") or None,
    )
    _drop_auto_snapshot(self, ami)
    ami.root_device_type = root_device_type
    ami._custom_bdm = mappings
    if image_location:
        ami.image_location = image_location
    else:
        ami.image_location = f"{self.account_id}/{name}"
    ami.ena_support = params.get("ena_support")
    ami.tpm_support = params.get("tpm_support")
    ami.imds_support = params.get("imds_support")
    for key, value in (params.get("tags") or {}).items():
        ami.add_tag(key, value)
    self.amis[ami.id] = ami
    # AWS: a RegisterImage image is usually available at once; its id is still new.
    timing.made_image(self, ami, [], pends=False)
    return ami


def _response_register_image(self: AmisResponse) -> ActionResult:
    tags: dict[str, str] = {}
    for spec in self._get_param("TagSpecifications", []) or []:
        if spec.get("ResourceType") != "image":
            raise _Error(
                "InvalidParameterValue",
                f"'{spec.get('ResourceType')}' is not a valid taggable resource type for this operation.",
            )
        for tag in spec.get("Tags", []) or []:
            tags[tag["Key"]] = tag.get("Value", "")
    self.error_on_dryrun()
    image = self.ec2_backend.register_image(
        name=self._get_param("Name"),
        description=self._get_param("Description") or None,
        image_location=self._get_param("ImageLocation"),
        root_device_name=self._get_param("RootDeviceName"),
        block_device_mappings=self._get_param("BlockDeviceMappings", []),
        architecture=self._get_param("Architecture"),
        virtualization_type=self._get_param("VirtualizationType"),
        boot_mode=self._get_param("BootMode"),
        ena_support=self._get_param("EnaSupport"),
        tpm_support=self._get_param("TpmSupport"),
        imds_support=self._get_param("ImdsSupport"),
        tags=tags,
    )
    return ActionResult({"ImageId": image.id})


_original_create_image = AmiBackend.create_image


def _create_image(
    self: AmiBackend,
    instance_id: str,
    name: str,
    description: str,
    tag_specifications: list[dict[str, Any]],
) -> Ami:
    # AWS: TagSpecifications may tag the snapshots too (moto: HTTP 500); names are unique.
    _check_name_free(self, name)
    image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
    snapshot_tags = {
        t["Key"]: t.get("Value", "")
        for s in tag_specifications
        if s.get("ResourceType") == "snapshot"
        for t in s.get("Tags", []) or []
    }
    ami = _original_create_image(self, instance_id, name, description, image_specs)
    ami.root_device_type = "ebs"
    # AWS: the source is the image the instance was launched from.
    lineage.made(ami, self.region_name, self.get_instance(instance_id).image_id, self.region_name)
    if snapshot_tags and ami.ebs_snapshot is not None:
        ami.ebs_snapshot.add_tags(snapshot_tags)
    # AWS: pending first (minutes to hours), and the new id is unknown for a while.
    timing.made_image(self, ami, _ami_snapshot_ids(ami), pends=True)
    return ami


_original_copy_image = AmiBackend.copy_image


def _copy_image(self: AmiBackend, source_image_id: str, source_region: str, name: Any = None, description: Any = None) -> Ami:
    _check_name_free(self, name or _source_name(self, source_image_id, source_region))
    ami = _original_copy_image(self, source_image_id, source_region, name, description)
    lineage.made(ami, self.region_name, source_image_id, source_region)
    # AWS describes the copy's snapshot by the images it was copied for and from.
    source = ec2_models.ec2_backends[self.account_id][source_region].amis.get(source_image_id)
    source_snapshots = _ami_snapshot_ids(source) if source else []
    if ami.ebs_snapshot is not None:
        ami.ebs_snapshot.description = (
            f"Copied for DestinationAmi {ami.id} from SourceAmi {source_image_id} for SourceSnapshot "
            f"{source_snapshots[0] if source_snapshots else 'unknown'}. Task created on {int(utcnow().timestamp())}."
        )
    timing.made_image(self, ami, _ami_snapshot_ids(ami), pends=True)
    return ami


# Per (account, region) CopyImage client tokens: {token: (request fingerprint, image id)}.
_copy_tokens: dict[tuple[str, str], dict[str, tuple[tuple[Any, ...], str]]] = {}


def _tag_specs(specs: list[dict[str, Any]] | None, allowed: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """TagSpecifications as {resource type: tags}; a type the action cannot tag is refused, as AWS does."""
    tags: dict[str, dict[str, str]] = {}
    for spec in specs or []:
        kind = spec.get("ResourceType")
        if kind not in allowed:
            raise _Error(
                "InvalidParameterValue",
                f"'{kind}' is not a valid taggable resource type for this operation.",
            )
        for tag in spec.get("Tags", []) or []:
            if tag["Key"].lower().startswith("aws:"):
                raise _Error(
                    "InvalidParameterValue",
                    "Tag keys starting with 'aws:' are reserved for internal use",
                )
            tags.setdefault(kind, {})[tag["Key"]] = tag.get("Value", "")
    if any(len(kind_tags) > 50 for kind_tags in tags.values()):
        raise _Error("TagLimitExceeded", "The maximum number of tags per resource is 50")
    return tags


def page_size(account: str, size: int) -> int:
    """A page size under the admin page-size cap (the modules of newer actions use it too)."""
    cap = _page_size_cap.get(account)
    return min(size, cap) if cap else size


def _response_copy_image(self: AmisResponse) -> ActionResult:
    """AWS: `TagSpecifications` tag the new image and its snapshots; `CopyImageTags` copies the source's
    user tags (not `aws:` ones); a `ClientToken` (1-64 ASCII characters) makes the call idempotent: the
    same token with the same parameters returns the first call's image and copies nothing, the same
    token with other parameters is `IdempotentParameterMismatch`. moto ignores all three."""
    source_image_id = self._get_param("SourceImageId")
    source_region = self._get_param("SourceRegion")
    name = self._get_param("Name")
    description = self._get_param("Description")
    copy_tags = str(self._get_param("CopyImageTags", False)).lower() == "true"
    specs = self._get_param("TagSpecifications", [])
    tags = _tag_specs(specs, ("image", "snapshot"))
    token = self._get_param("ClientToken")
    if token is not None and not (1 <= len(token) <= 64 and token.isascii()):
        raise _Error("InvalidParameterValue", "ClientToken must be 1 to 64 ASCII characters")
    completion = lineage.completion_minutes(self._get_param("SnapshotCopyCompletionDurationMinutes"))
    self.error_on_dryrun()
    fingerprint = (
        source_image_id,
        source_region,
        name,
        description,
        copy_tags,
        repr(sorted((k, sorted(v.items())) for k, v in tags.items())),
        self._get_param("Encrypted"),
        self._get_param("KmsKeyId"),
        completion,
    )
    backend = self.ec2_backend
    with _lock:
        tokens = _copy_tokens.setdefault((backend.account_id, backend.region_name), {})
        if token is not None and token in tokens:
            earlier, image_id = tokens[token]
            if earlier != fingerprint:
                raise _Error(
                    "IdempotentParameterMismatch",
                    f"The client token {token} has been used with different parameters.",
                )
            return ActionResult({"ImageId": image_id})
    ami = backend.copy_image(source_image_id, source_region, name, description)
    if completion is not None and ami.ebs_snapshot is not None:
        # AWS reports a time-based copy's duration on each of its snapshots.
        ami.ebs_snapshot.completion_duration_minutes = completion
    image_tags = dict(tags.get("image", {}))
    if copy_tags:
        source = ec2_models.ec2_backends[backend.account_id][source_region].amis.get(source_image_id)
        copied = {
            t["key"]: t["value"]
            for t in (source.get_tags() if source else [])
            if not t["key"].startswith("aws:")
        }
        image_tags = {**copied, **image_tags}
    if image_tags:
        backend.create_tags([ami.id], image_tags)
    snapshot_tags = tags.get("snapshot")
    if snapshot_tags:
        snapshot_ids = _ami_snapshot_ids(ami)
        if snapshot_ids:
            backend.create_tags(snapshot_ids, snapshot_tags)
    if token is not None:
        with _lock:
            tokens[token] = (fingerprint, ami.id)
    return ActionResult({"ImageId": ami.id})


def _launched(backend: Any, image_id: str) -> None:
    """AWS: RunInstances sets the image's LastLaunchedTime (reported to the owner by DescribeImages,
    whoever launched it). AWS updates it up to 24 h late; here at once."""
    for account_id, regions in list(ec2_models.ec2_backends.items()):
        if backend.region_name not in regions.keys():
            continue
        ami = dict.__getitem__(regions, backend.region_name).amis.get(image_id)
        if ami is not None:
            ami.last_launched_time = _iso(utcnow())
            return


def _patch_run_instances() -> None:
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances

    def run_instances(self: Any, image_id: str, *args: Any, **kwargs: Any) -> Any:
        reservation = original(self, image_id, *args, **kwargs)
        _launched(self, image_id)
        timing.made_instances(self, [instance.id for instance in reservation.instances])
        return reservation

    InstanceBackend.run_instances = run_instances


def _source_name(backend: Any, image_id: str, region: str) -> str | None:
    source = ec2_models.ec2_backends[backend.account_id][region].amis.get(image_id)
    return source.name if source else None


def _visible_images(self: AmiBackend) -> list[Ami]:
    """Own images plus other accounts' images in this region that are public or shared with us.

    AWS: an image shared with an account (launch permission UserId) or public is visible to it;
    moto isolates accounts completely.
    """
    images = list(self.amis.copy().values())
    me = self.account_id
    for account_id, regions in list(ec2_models.ec2_backends.items()):
        # keys() holds only the regions that account has touched; [] would create one.
        if account_id == me or self.region_name not in regions.keys():
            continue
        other = dict.__getitem__(regions, self.region_name)
        for ami in list(other.amis.values()):
            if ami.is_public or {"UserId": me} in ami.launch_permissions:
                images.append(ami)
    return images


visible_images = _visible_images


def _describe_images(
    self: AmiBackend,
    ami_ids: list[str] | None = None,
    filters: dict[str, Any] | None = None,
    exec_users: list[str] | None = None,
    owners: list[str] | None = None,
    include_disabled: bool = False,
    include_deprecated: bool = False,
) -> list[Ami]:
    from moto.ec2.exceptions import MalformedAMIIdError
    from moto.ec2.utils import generic_filter

    me = self.account_id
    # AWS: a new image is missing from listings for a while; a deregistered one is still listed
    # for a while, as `deregistered`.
    images = [a for a in _visible_images(self) if not timing.young(self.region_name, a.id)]
    images.extend(timing.ghosts(self))
    if ami_ids:
        malformed = [i for i in ami_ids if not i.startswith("ami-")]
        if malformed:
            raise MalformedAMIIdError(malformed)
        images = [ami for ami in images if ami.id in ami_ids]
        deleted = [i for i in ami_ids if i in self.deleted_amis]
        if not images and not deleted:
            raise InvalidAMIIdError(ami_ids)
    if exec_users:
        users = {me if u == "self" else u for u in exec_users}
        images = [
            ami
            for ami in images
            if ("all" in users and ami.is_public)
            or any(lp.get("UserId") in users for lp in ami.launch_permissions)
        ]
    if owners:
        owner_set = {me if o == "self" else o for o in owners}
        images = [a for a in images if a.owner_id in owner_set or a.owner_alias in owner_set]
    # AWS: disabled images are hidden unless IncludeDisabled; deprecated ones are hidden from
    # non-owners unless IncludeDeprecated or asked for by id.
    if not include_disabled:
        images = [a for a in images if a.state != "disabled"]
    if not include_deprecated:
        images = [
            a
            for a in images
            if not _is_deprecated(a) or a.owner_id == me or (ami_ids and a.id in ami_ids)
        ]
    if filters:
        images = generic_filter(filters, images)
    return images


def _page(self: Any, items: list[Any], key: Any) -> tuple[list[Any], str | None]:
    """AWS-style MaxResults/NextToken paging; the admin page-size cap forces small pages."""
    max_results = self._get_param("MaxResults")
    cap = _page_size_cap.get(self.current_account)
    if max_results is None and cap is None:
        return items, None
    size = int(max_results) if max_results is not None else 1000
    if cap is not None:
        size = min(size, cap)
    items = sorted(items, key=key)
    start = _page_start(self)
    page = items[start : start + size]
    next_token = str(start + size) if start + size < len(items) else None
    return page, next_token


def _page_start(self: Any) -> int:
    token = self._get_param("NextToken")
    if not token:
        return 0
    try:
        return int(token)
    except ValueError:
        raise _Error("InvalidParameterValue", f"Invalid value '{token}' for NextToken")


def paged_result(self: Any, items: list[Any], size: int, key: str) -> ActionResult:
    """One page of `items` (already in order) under `key`, with NextToken: the paging of the
    actions the other modules add, under the admin page-size cap too."""
    size = page_size(self.current_account, size)
    start = _page_start(self)
    result: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def _response_describe_images(self: AmisResponse) -> ActionResult:
    self.error_on_dryrun()
    ami_ids = self._get_param("ImageIds", [])
    if ami_ids and self._get_param("MaxResults") is not None:
        raise _Error(
            "InvalidParameterCombination", "The parameter imagesSet cannot be used with the parameter maxResults"
        )
    images = self.ec2_backend.describe_images(
        ami_ids=ami_ids,
        filters=self._filters_from_querystring(),
        exec_users=self._get_param("ExecutableUsers", []),
        owners=self._get_param("Owners", []),
        include_disabled=bool(self._get_param("IncludeDisabled", False)),
        include_deprecated=bool(self._get_param("IncludeDeprecated", False)),
    )
    page, next_token = _page(self, images, key=lambda a: a.id)
    result: dict[str, Any] = {"Images": page}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


def _find_owned(backend: Any, ami_id: str) -> Ami:
    if ami_id in backend.amis:
        return backend.amis[ami_id]
    if ami_id in backend.deleted_amis:
        raise UnvailableAMIIdError(ami_id)
    raise InvalidAMIIdError(ami_id)


def _response_deregister_image(self: AmisResponse) -> ActionResult:
    ami_id = self._get_param("ImageId")
    delete_snapshots = bool(self._get_param("DeleteAssociatedSnapshots", False))
    self.error_on_dryrun()
    backend = self.ec2_backend
    ami = _find_owned(backend, ami_id)
    lineage.refuse_managed_deregistration(ami_id)
    if _protected(ami):
        # AWS refuses to deregister a protected image (and during the cooldown after disabling).
        raise _Error(
            "InvalidParameterValue",
            f"Image {ami_id} has deregistration protection enabled and cannot be deregistered.",
        )
    snapshot_ids = _ami_snapshot_ids(ami)
    tags = dict(backend.tags.get(ami_id, {}))
    backend.deregister_image(ami_id)
    binned = recycle_bin.bin_image(backend, ami, tags)
    result: dict[str, Any] = {"Return": True}
    if delete_snapshots:
        # AWS: deletes the image's snapshots, skips those another image still uses.
        outcomes = []
        scripted = _snapshot_results.get(backend.account_id, {})
        for snapshot_id in snapshot_ids:
            if snapshot_id in scripted:
                outcomes.append({"SnapshotId": snapshot_id, "ReturnCode": scripted[snapshot_id]})
            elif (
                _image_using_snapshot(backend, snapshot_id) is not None
                or timing.still_in_use(backend, snapshot_id) is not None
            ):
                # Another image uses it, or one deregistered moments ago still does, for AWS.
                outcomes.append({"SnapshotId": snapshot_id, "ReturnCode": "skipped"})
            elif snapshot_locks.is_locked(backend.account_id, backend.region_name, snapshot_id):
                outcomes.append({"SnapshotId": snapshot_id, "ReturnCode": "client-error"})
            elif _remove_snapshot(backend, snapshot_id) is not None:
                outcomes.append({"SnapshotId": snapshot_id, "ReturnCode": "success"})
            else:
                outcomes.append({"SnapshotId": snapshot_id, "ReturnCode": "client-error"})
        result["DeleteSnapshotResults"] = outcomes
    timing.deregistered(backend, ami, binned, [s for s in snapshot_ids if s in backend.snapshots])
    return ActionResult(result)


def _years_after(when: datetime, years: int) -> datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:  # 29 February
        return when.replace(year=when.year + years, day=28)


def _response_enable_image_deprecation(self: AmisResponse) -> ActionResult:
    ami = _find_owned(self.ec2_backend, self._get_param("ImageId"))
    deprecate_at = self._get_param("DeprecateAt")
    self.error_on_dryrun()
    if isinstance(deprecate_at, str):
        from moto.core.parse import default_timestamp_parser

        deprecate_at = default_timestamp_parser(deprecate_at)
    # AWS (EnableImageDeprecation): seconds are rounded to the nearest minute; a time in the past
    # is refused; at most 10 years from now, and for a public image 2 years from its creation.
    from datetime import timedelta

    rounded = deprecate_at.replace(second=0, microsecond=0)
    if deprecate_at.second >= 30:
        rounded += timedelta(minutes=1)
    now = utcnow()
    if rounded.tzinfo is None:
        rounded = rounded.replace(tzinfo=timezone.utc)
    now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now
    if rounded <= now:
        raise _Error("InvalidParameterValue", f"The deprecation time {_iso(rounded)} cannot be in the past.")
    if rounded > _years_after(now, 10):
        raise _Error("InvalidParameterValue", "The deprecation time cannot be more than 10 years from now.")
    created = ami.creation_date if ami.creation_date.tzinfo else ami.creation_date.replace(tzinfo=timezone.utc)
    if ami.is_public and rounded > _years_after(created, 2):
        raise _Error(
            "InvalidParameterValue",
            "The deprecation time of a public image cannot be more than 2 years after its creation.",
        )
    ami.deprecation_time = _iso(rounded)
    return ActionResult({"Return": True})


def _response_disable_image_deprecation(self: AmisResponse) -> ActionResult:
    ami = _find_owned(self.ec2_backend, self._get_param("ImageId"))
    self.error_on_dryrun()
    ami.deprecation_time = None
    return ActionResult({"Return": True})


def _response_enable_image_deregistration_protection(self: AmisResponse) -> ActionResult:
    ami = _find_owned(self.ec2_backend, self._get_param("ImageId"))
    with_cooldown = bool(self._get_param("WithCooldown", False))
    self.error_on_dryrun()
    ami.deregistration_protection = "enabled-with-cooldown" if with_cooldown else "enabled-without-cooldown"
    ami._protection_cooldown_until = None
    return ActionResult({"Return": "true"})


def _response_disable_image_deregistration_protection(self: AmisResponse) -> ActionResult:
    from datetime import timedelta

    ami = _find_owned(self.ec2_backend, self._get_param("ImageId"))
    self.error_on_dryrun()
    if ami.deregistration_protection == "enabled-with-cooldown":
        # AWS: protection stays in force for 24 hours after it is disabled.
        until = utcnow() + timedelta(hours=24)
        ami._protection_cooldown_until = until
        ami.deregistration_protection = f"disabled-until-{_iso(until)}"
    else:
        ami.deregistration_protection = "disabled"
    return ActionResult({"Return": "true"})


# ---------------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------------
class _ImageTable(dict):
    """The backend's images, indexed by the snapshots they use.

    Same answers as scanning every image for every snapshot lookup, without the quadratic cost at
    thousands of images (an image's mapping is fixed before it is stored).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        self.users: dict[str, set[str]] = {}
        for key, ami in dict(*args).items():
            self[key] = ami

    def _index(self, key: str, ami: Ami, add: bool) -> None:
        for snapshot_id in _ami_snapshot_ids(ami):
            users = self.users.setdefault(snapshot_id, set())
            if add:
                users.add(key)
            else:
                users.discard(key)

    def __setitem__(self, key: str, ami: Ami) -> None:
        if key in self:
            self._index(key, dict.__getitem__(self, key), add=False)
        super().__setitem__(key, ami)
        self._index(key, ami, add=True)

    def __delitem__(self, key: str) -> None:
        self._index(key, dict.__getitem__(self, key), add=False)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._index(key, dict.__getitem__(self, key), add=False)
        return super().pop(key, *default)


_original_ami_backend_init = AmiBackend.__init__


def _ami_backend_init(self: AmiBackend) -> None:
    _original_ami_backend_init(self)
    self.amis = _ImageTable(self.amis)


def _image_using_snapshot(backend: Any, snapshot_id: str) -> str | None:
    amis = backend.amis
    if isinstance(amis, _ImageTable):
        users = amis.users.get(snapshot_id)
        return min(users) if users else None
    for ami in list(amis.values()):
        if snapshot_id in _ami_snapshot_ids(ami):
            return ami.id
    return None


def _delete_snapshot(self: EBSBackend, snapshot_id: str) -> Any:
    # AWS: InvalidSnapshot.InUse for any snapshot in any registered image's mapping
    # (moto: only its own auto-created snapshots).
    if snapshot_id not in self.snapshots:
        raise InvalidSnapshotIdError()
    # AWS: a snapshot of an image deregistered moments ago is still in use for a while.
    user = _image_using_snapshot(self, snapshot_id) or timing.still_in_use(self, snapshot_id)
    if user is not None:
        raise InvalidSnapshotInUse(snapshot_id, user)
    if snapshot_locks.is_locked(self.account_id, self.region_name, snapshot_id):
        raise _Error("SnapshotLocked", f"The snapshot '{snapshot_id}' is locked and cannot be deleted.")
    return _remove_snapshot(self, snapshot_id)


def _remove_snapshot(backend: Any, snapshot_id: str) -> Any:
    """Deletes a snapshot; a Recycle Bin rule that retains it keeps it in the bin."""
    snapshot = backend.snapshots.pop(snapshot_id, None)
    if snapshot is not None:
        snapshot_locks.forget(backend.account_id, backend.region_name, snapshot_id)
        recycle_bin.bin_snapshot(backend, snapshot, dict(backend.tags.get(snapshot_id, {})))
    return snapshot


def _response_describe_snapshots(self: ElasticBlockStore) -> ActionResult:
    snapshot_ids = self._get_param("SnapshotIds", [])
    if snapshot_ids and self._get_param("MaxResults") is not None:
        raise _Error(
            "InvalidParameterCombination", "The parameter snapshotSet cannot be used with the parameter maxResults"
        )
    snapshots = self.ec2_backend.describe_snapshots(
        snapshot_ids=snapshot_ids, filters=self._filters_from_querystring()
    )
    # AWS: OwnerIds restricts to those owners (moto ignores it).
    owners = self._get_param("OwnerIds", [])
    if owners:
        me = self.current_account
        owner_set = {me if o == "self" else o for o in owners}
        snapshots = [s for s in snapshots if s.owner_id in owner_set]
    page, next_token = _page(self, snapshots, key=lambda s: s.id)
    result: dict[str, Any] = {"Snapshots": page}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


# ---------------------------------------------------------------------------------------------
# DescribeImageReferences (moto: not implemented). AWS (API reference, 2025-08): ImageId.N takes
# 1-10 ids (else InvalidParameterValue); IncludeAllResourceTypes or ResourceTypes is required;
# MaxResults 5-1000 with NextToken; only the caller's own resources are reported. Served here:
# instances (option state-name; default every state but terminated), launch template versions
# (option version-depth: the newest N versions; default all) and SSM parameters whose current
# value is the image id. moto has no Image Builder, so recipes never reference anything here.
# ---------------------------------------------------------------------------------------------
_REFERENCE_TYPES = (
    "ec2:Instance",
    "ec2:LaunchTemplate",
    "ssm:Parameter",
    "imagebuilder:ImageRecipe",
    "imagebuilder:ContainerRecipe",
)
_INSTANCE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")


def _reference_options(self: AmisResponse) -> dict[str, dict[str, list[str]]]:
    include_all = str(self._get_param("IncludeAllResourceTypes", False)).lower() == "true"
    requested = self._get_param("ResourceTypes", []) or []
    if not include_all and not requested:
        raise _Error("MissingParameter", "Either IncludeAllResourceTypes or ResourceTypes must be specified.")
    wanted: dict[str, dict[str, list[str]]] = {kind: {} for kind in _REFERENCE_TYPES} if include_all else {}
    for request in requested:
        kind = request.get("ResourceType")
        if kind not in _REFERENCE_TYPES:
            raise _Error("InvalidParameterValue", f"Invalid value '{kind}' for ResourceType.")
        options = {}
        for option in request.get("ResourceTypeOptions", []) or []:
            name = option.get("OptionName")
            if name not in ("state-name", "version-depth") or kind not in ("ec2:Instance", "ec2:LaunchTemplate"):
                raise _Error("InvalidParameterValue", f"Invalid option '{name}' for resource type {kind}.")
            options[name] = [str(v) for v in option.get("OptionValues", []) or []]
        wanted[kind] = options
    return wanted


def _response_describe_image_references(self: AmisResponse) -> ActionResult:
    from moto.ec2.exceptions import MalformedAMIIdError
    from moto.ssm.models import ssm_backends

    image_ids = self._get_param("ImageIds", []) or []
    if not image_ids:
        raise MissingParameterError("ImageId")
    if len(image_ids) > 10:
        raise _Error(
            "InvalidParameterValue",
            f"The parameter ImageId has {len(image_ids)} items; at most 10 are allowed.",
        )
    malformed = [i for i in image_ids if not re.fullmatch(r"ami-[0-9a-f]{8,17}", i)]
    if malformed:
        raise MalformedAMIIdError(malformed)
    max_results = self._get_param("MaxResults")
    if max_results is not None and not 5 <= int(max_results) <= 1000:
        raise _Error("InvalidParameterValue", f"Value ({max_results}) for parameter maxResults is invalid. Expecting a value between 5 and 1000.")
    wanted = _reference_options(self)
    self.error_on_dryrun()

    backend = self.ec2_backend
    account, region = backend.account_id, backend.region_name
    ids = set(image_ids)
    references: list[dict[str, str]] = []
    if "ec2:Instance" in wanted:
        states = set(wanted["ec2:Instance"].get("state-name") or _INSTANCE_STATES)
        for instance in backend.all_instances():
            if instance.image_id in ids and instance.state in states:
                references.append({
                    "ImageId": instance.image_id,
                    "ResourceType": "ec2:Instance",
                    "Arn": f"arn:aws:ec2:{region}:{account}:instance/{instance.id}",
                })
    if "ec2:LaunchTemplate" in wanted:
        depth = wanted["ec2:LaunchTemplate"].get("version-depth")
        for template in list(backend.launch_templates.values()):
            versions = list(template.versions)
            if depth:
                versions = versions[-int(depth[0]):]
            used = sorted({v.image_id for v in versions if v.image_id in ids})
            for image_id in used:
                references.append({
                    "ImageId": image_id,
                    "ResourceType": "ec2:LaunchTemplate",
                    "Arn": f"arn:aws:ec2:{region}:{account}:launch-template/{template.id}",
                })
    if "ssm:Parameter" in wanted and region in ssm_backends[account].keys():
        parameters = dict.__getitem__(ssm_backends[account], region)._parameters
        for name, versions in list(dict.items(parameters)):
            if versions and versions[-1].value in ids:
                references.append({
                    "ImageId": versions[-1].value,
                    "ResourceType": "ssm:Parameter",
                    "Arn": f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}",
                })
    page, next_token = _page(self, references, key=lambda r: (r["ImageId"], r["ResourceType"], r["Arn"]))
    result: dict[str, Any] = {"ImageReferences": page}
    if next_token:
        result["NextToken"] = next_token
    return ActionResult(result)


# ---------------------------------------------------------------------------------------------
# DescribeInstances paging under the admin page-size cap (moto pages by reservation, 100 by
# default; the cap forces small pages so a client's paging loop is exercised, as AWS may return
# fewer than MaxResults).
# ---------------------------------------------------------------------------------------------
def _patch_instance_pages() -> None:
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.describe_instances

    def describe_instances(self: Any) -> ActionResult:
        cap = _page_size_cap.get(self.current_account)
        if cap is None or self._get_param("InstanceIds", []):
            return original(self)
        self.error_on_dryrun()
        reservations = self.ec2_backend.describe_instances(filters=self._filters_from_querystring())
        ids = [r.id for r in reservations]
        token = self._get_param("NextToken")
        start = ids.index(token) + 1 if token in ids else 0
        size = min(int(self._get_param("MaxResults", 1000)), cap)
        page = reservations[start : start + size]
        result: dict[str, Any] = {"Reservations": page}
        if start + size < len(reservations):
            result["NextToken"] = page[-1].id
        return ActionResult(result)

    InstanceResponse.describe_instances = describe_instances


# ---------------------------------------------------------------------------------------------
# DescribeLaunchTemplateVersions `ResolveAlias` (moto: ignored). AWS: with ResolveAlias=true, a
# version whose ImageId is `resolve:ssm:NAME` reports the AMI id the parameter holds (NAME may
# carry `:version` or `:label`); without it, the alias as written.
# ---------------------------------------------------------------------------------------------
def _patch_resolve_alias() -> None:
    import copy

    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ssm.models import ssm_backends

    original = LaunchTemplates.describe_launch_template_versions

    def describe_launch_template_versions(self: Any) -> ActionResult:
        answer = original(self)
        if str(self._get_param("ResolveAlias", False)).lower() != "true":
            return answer
        backend = self.ec2_backend
        ssm = ssm_backends[backend.account_id][backend.region_name]
        versions = []
        for version in answer.result["LaunchTemplateVersions"]:
            image = (version.get("LaunchTemplateData") or {}).get("ImageId") or ""
            if image.startswith("resolve:ssm:"):
                try:
                    parameter = ssm.get_parameter(image[len("resolve:ssm:"):])
                except Exception:  # an unknown version or label: left unresolved
                    parameter = None
                if parameter is not None:
                    version = dict(version)
                    version["LaunchTemplateData"] = copy.deepcopy(version["LaunchTemplateData"])
                    version["LaunchTemplateData"]["ImageId"] = parameter.value
            versions.append(version)
        return ActionResult({"LaunchTemplateVersions": versions})

    LaunchTemplates.describe_launch_template_versions = describe_launch_template_versions


# ---------------------------------------------------------------------------------------------
# Admin helpers (used by server.py routes)
# ---------------------------------------------------------------------------------------------
def backdate(account_id: str, region: str, resource_id: str, when: datetime, field: str | None = None) -> None:
    """Sets a creation time (image, snapshot) or, with field `last_launched`, an image's LastLaunchedTime."""
    backend = ec2_models.ec2_backends[account_id][region]
    if resource_id.startswith("ami-"):
        ami = backend.amis.get(resource_id)
        if ami is None:
            raise KeyError(resource_id)
        if field == "last_launched":
            ami.last_launched_time = _iso(when)
        else:
            ami.creation_date = when
    elif resource_id.startswith("snap-"):
        snapshot = backend.snapshots.get(resource_id)
        if snapshot is None:
            raise KeyError(resource_id)
        snapshot.start_time = when
    else:
        raise KeyError(resource_id)


def _patch_describe_regions() -> None:
    """AWS: DescribeRegions lists the regions of the endpoint's own partition (an `aws` endpoint
    never names cn-north-1 or us-gov-west-1); moto lists every partition's."""
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
    from moto.utilities.utils import get_partition

    original = RegionsAndZonesBackend.describe_regions

    def describe_regions(self: Any, region_names: list[str] | None = None) -> list[Any]:
        partition = get_partition(self.region_name)
        return [r for r in original(self, region_names) if get_partition(r.name) == partition]

    RegionsAndZonesBackend.describe_regions = describe_regions  # type: ignore[method-assign]


def _patch_unimplemented_actions() -> None:
    """An EC2 action moto lacks answers as AWS answers an action it does not offer (a partition or
    region without the API): HTTP 400 `InvalidAction`. Stock moto raises, so the server answers HTTP
    500 with an HTML page, which every SDK retries as transient: seconds lost per call, and a client
    that treats "not offered" as "try again" can never be tested."""
    from moto.core.responses import BaseResponse
    from moto.ec2.responses import EC2Response

    original = BaseResponse.call_action

    def call_action(self: BaseResponse) -> Any:
        try:
            return original(self)
        except NotImplementedError:
            if not isinstance(self, EC2Response):
                raise
            action = self._get_action()
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidAction</Code>'
                f"<Message>The action {action} is not valid for this web service.</Message></Error></Errors>"
                "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
            )
            return 400, {"status": 400, "Content-Type": "text/xml"}, body

    BaseResponse.call_action = call_action  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# Reads right after a permission change may show the old value (timing.read_back_lag): the
# backend calls behind ModifyImageAttribute / ModifySnapshotAttribute and their Describe*.
# ---------------------------------------------------------------------------------------------
def _patch_read_back() -> None:
    import copy

    original_modify = AmiBackend.modify_image_attribute
    original_read = AmiBackend.describe_image_attribute

    def modify_image_attribute(self: AmiBackend, ami_id: str, *args: Any, **kwargs: Any) -> Any:
        ami = self.amis.get(ami_id)
        before = copy.deepcopy(ami.launch_permissions) if ami is not None else None
        answer = original_modify(self, ami_id, *args, **kwargs)
        if ami is not None:
            timing.changing(self, ami_id, before)
        return answer

    def describe_image_attribute(self: AmiBackend, ami_id: str, attribute_name: str) -> Any:
        if attribute_name == "launch_permissions":
            lags, old = timing.lagging(self, ami_id)
            if lags and ami_id in self.amis:
                return old
        return original_read(self, ami_id, attribute_name)

    AmiBackend.modify_image_attribute = modify_image_attribute
    AmiBackend.describe_image_attribute = describe_image_attribute

    def volume_permissions(backend: Any, snapshot_id: str) -> tuple[set[str], set[str]]:
        snapshot = backend.snapshots[snapshot_id]
        return set(snapshot.create_volume_permission_groups), set(snapshot.create_volume_permission_userids)

    for name in ("add_create_volume_permission", "remove_create_volume_permission"):
        original = getattr(EBSBackend, name)

        def change(self: Any, snapshot_id: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            before = volume_permissions(self, snapshot_id) if snapshot_id in self.snapshots else None
            answer = _original(self, snapshot_id, *args, **kwargs)
            if before is not None:
                timing.changing(self, snapshot_id, before)
            return answer

        setattr(EBSBackend, name, change)

    for name, index in (("get_create_volume_permission_groups", 0), ("get_create_volume_permission_userids", 1)):
        original = getattr(EBSBackend, name)

        def read(self: Any, snapshot_id: str, _original: Any = original, _index: int = index) -> Any:
            lags, old = timing.lagging(self, snapshot_id)
            if lags:
                return old[_index]
            return _original(self, snapshot_id)

        setattr(EBSBackend, name, read)


# ---------------------------------------------------------------------------------------------
# SSM parameters of data type aws:ec2:image (moto: written at once, never checked). AWS: "the
# parameter is validated asynchronously": PutParameter answers at once, and the value is written
# once it is found to be an available image of the region; otherwise never (timing.py sets the
# delay).
# ---------------------------------------------------------------------------------------------
def _available_image(account: str, region: str, image_id: str) -> bool:
    """An available image of the region that the account may launch: its own, shared with it,
    or public."""
    for owner, regions in list(ec2_models.ec2_backends.items()):
        if region not in regions.keys():
            continue
        ami = dict.__getitem__(regions, region).amis.get(image_id)
        if ami is None:
            continue
        visible = owner == account or ami.is_public or {"UserId": account} in ami.launch_permissions
        return visible and ami.state == "available"
    return False


def _patch_ssm_image_parameters() -> None:
    from moto.ssm.exceptions import ParameterAlreadyExists
    from moto.ssm.responses import SimpleSystemManagerResponse

    original = SimpleSystemManagerResponse.put_parameter

    def put_parameter(self: Any) -> Any:
        if self._get_param("DataType", "text") != "aws:ec2:image":
            return original(self)
        backend = self.ssm_backend
        name = self._get_param("Name")
        value = self._get_param("Value")
        overwrite = bool(self._get_param("Overwrite", False))
        existing = backend._parameters[name] if name in backend._parameters else []
        if existing and not overwrite:
            raise ParameterAlreadyExists
        version = (existing[-1].version if existing else 0) + 1
        region, account = self.region, self.current_account
        description = self._get_param("Description")

        def validate_and_write() -> None:
            # As on AWS, a value that fails validation is dropped without a word to the caller.
            if _available_image(account, region, value):
                backend.put_parameter(
                    name, description, value, "String", None, None,
                    True, None, "aws:ec2:image", tier=None, policies=None,
                )

        timing.later(timing.image_validation_delay(self.current_account), validate_and_write)
        return ActionResult({"Version": version, "Tier": "Standard"})

    SimpleSystemManagerResponse.put_parameter = put_parameter


def apply() -> None:
    """Install every patch. Call once, before the server handles a request."""
    _patch_accounts()
    timing.apply()
    _patch_read_back()
    _patch_ssm_image_parameters()
    _patch_unimplemented_actions()
    _patch_describe_regions()
    snapshot_locks.apply()
    recycle_bin.apply()
    usage_reports.apply()
    lineage.apply()
    _patch_resolve_alias()
    _patch_instance_pages()
    _patch_run_instances()
    TaggedEC2Resource.get_tags = _get_tags
    Ami.__init__ = _ami_init
    Ami.block_device_mappings = property(_ami_block_device_mappings)
    AmiBackend.__init__ = _ami_backend_init
    AmiBackend.register_image = _register_image
    AmiBackend.create_image = _create_image
    AmiBackend.copy_image = _copy_image
    AmiBackend.describe_images = _describe_images
    AmisResponse.register_image = _response_register_image
    AmisResponse.copy_image = _response_copy_image
    AmisResponse.describe_images = _response_describe_images
    AmisResponse.deregister_image = _response_deregister_image
    AmisResponse.describe_image_references = _response_describe_image_references
    AmisResponse.enable_image_deprecation = _response_enable_image_deprecation
    AmisResponse.disable_image_deprecation = _response_disable_image_deprecation
    AmisResponse.enable_image_deregistration_protection = _response_enable_image_deregistration_protection
    AmisResponse.disable_image_deregistration_protection = _response_disable_image_deregistration_protection
    EBSBackend.delete_snapshot = _delete_snapshot
    ElasticBlockStore.describe_snapshots = _response_describe_snapshots
