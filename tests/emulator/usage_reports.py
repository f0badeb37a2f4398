"""Image usage reports (CreateImageUsageReport, DescribeImageUsageReports,
DescribeImageUsageReportEntries), which moto lacks.

AWS behaviour reproduced (EC2 API reference, 2025-08):
- CreateImageUsageReport: one `ImageId` (the caller's own image, else `InvalidAMIID.NotFound`),
  `ResourceType.N` required (`ec2:Instance`, `ec2:LaunchTemplate`; option `version-depth` 1-10000,
  default 20, for launch templates), `AccountId.N` 0-200 twelve-digit ids (none: every account).
  Answers a `ReportId`; the report is `pending`, then `available` (asynchronous).
- The report counts, per account and resource type, the account's resources in the image's region
  that use the image: instances in any state but terminated; launch templates whose newest
  `version-depth` versions name it. Accounts with no use have no entry.
- DescribeImageUsageReports: `ImageId.N`, `ReportId.N`, filter `state`, `MaxResults` 1-1000 with
  `NextToken`; reports expire 30 days after creation.
- DescribeImageUsageReportEntries: `ReportId.N`, `ImageId.N`, filters `account-id`,
  `resource-type`, `MaxResults` 1-1000 with `NextToken`; entries only once the report is available.

Test convention (admin config, per account): `usage_report_delay` seconds a report stays pending
(default 0.2; a large value makes it never finish, to test timeouts), `usage_report_fail` makes new
reports end in `error`.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2 import models as ec2_models
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError

import fidelity

RESOURCE_TYPES = ("ec2:Instance", "ec2:LaunchTemplate")
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")

_lock = threading.Lock()
# owner account -> {report id: report}
_reports: dict[str, dict[str, dict[str, Any]]] = {}
_delay: dict[str, float] = {}
_fail: set[str] = set()


class _Error(EC2ClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


def configure(account: str, delay: float | None = None, fail: bool | None = None) -> None:
    with _lock:
        if delay is not None:
            _delay[account] = float(delay)
        if fail is not None:
            (_fail.add if fail else _fail.discard)(account)


def _now() -> datetime:
    return utcnow().replace(tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _count(account: str, region: str, image_id: str, kinds: dict[str, int]) -> dict[str, int]:
    """Per resource type, how many of the account's resources in the region use the image."""
    regions = ec2_models.ec2_backends[account]
    if region not in regions.keys():
        return {}
    backend = dict.__getitem__(regions, region)
    counts: dict[str, int] = {}
    if "ec2:Instance" in kinds:
        n = sum(1 for i in backend.all_instances() if i.image_id == image_id and i.state in LIVE_STATES)
        if n:
            counts["ec2:Instance"] = n
    if "ec2:LaunchTemplate" in kinds:
        depth = kinds["ec2:LaunchTemplate"]
        n = 0
        for template in list(backend.launch_templates.values()):
            versions = list(template.versions)[-depth:]
            if any(v.image_id == image_id for v in versions):
                n += 1
        if n:
            counts["ec2:LaunchTemplate"] = n
    return counts


def _finish(owner: str, report: dict[str, Any]) -> None:
    """Pending → available once its delay is over: the entries are counted then."""
    if report["State"] != "pending" or _now() < report["ready_at"]:
        return
    if report["fail"]:
        report["State"] = "error"
        report["StateReason"] = "The report could not be created."
        return
    accounts = report["AccountIds"] or [a for a in list(ec2_models.ec2_backends.keys()) if re.fullmatch(r"\d{12}", a)]
    entries = []
    for account in accounts:
        if account == owner:
            continue
        for kind, n in _count(account, report["region"], report["ImageId"], report["kinds"]).items():
            entries.append({
                "ResourceType": kind,
                "ReportId": report["ReportId"],
                "UsageCount": n,
                "AccountId": account,
                "ImageId": report["ImageId"],
                "ReportCreationTime": _iso(report["created"]),
            })
    report["entries"] = entries
    report["State"] = "available"


def _visible(owner: str, region: str) -> list[dict[str, Any]]:
    now = _now()
    with _lock:
        reports = _reports.setdefault(owner, {})
        for report_id in [r for r, rep in reports.items() if rep["expires"] <= now]:
            reports.pop(report_id)
        for report in reports.values():
            _finish(owner, report)
        return [r for r in reports.values() if r["region"] == region]


def _max_results(self: Any) -> int:
    raw = self._get_param("MaxResults")
    if raw is None:
        return 1000
    value = int(raw)
    if not 1 <= value <= 1000:
        raise _Error("InvalidParameterValue", f"Value ({value}) for parameter maxResults is invalid. Expecting a value between 1 and 1000.")
    return value


def create_image_usage_report(self: Any) -> ActionResult:
    backend = self.ec2_backend
    image_id = self._get_param("ImageId")
    if not image_id:
        raise _Error("MissingParameter", "The request must contain the parameter ImageId")
    requested = self._get_param("ResourceTypes", []) or []
    if not requested:
        raise _Error("MissingParameter", "The request must contain the parameter ResourceType")
    kinds: dict[str, int] = {}
    for request in requested:
        kind = request.get("ResourceType")
        if kind not in RESOURCE_TYPES:
            raise _Error("InvalidParameterValue", f"Invalid value '{kind}' for ResourceType.")
        depth = 20
        for option in request.get("ResourceTypeOptions", []) or []:
            values = option.get("OptionValues", []) or []
            if option.get("OptionName") != "version-depth" or kind != "ec2:LaunchTemplate" or len(values) != 1:
                raise _Error("InvalidParameterValue", f"Invalid option '{option.get('OptionName')}' for {kind}.")
            try:
                depth = int(values[0])
            except ValueError:
                depth = 0
            if not 1 <= depth <= 10000:
                raise _Error("InvalidParameterValue", "version-depth must be between 1 and 10000.")
        kinds[kind] = depth
    accounts = self._get_param("AccountIds", []) or []
    if len(accounts) > 200:
        raise _Error("InvalidParameterValue", f"The parameter AccountId has {len(accounts)} items; at most 200 are allowed.")
    bad = [a for a in accounts if not re.fullmatch(r"\d{12}", a)]
    if bad:
        raise _Error("InvalidParameterValue", f"Invalid account id: {bad[0]}")
    self.error_on_dryrun()
    if image_id not in backend.amis or backend.amis[image_id].owner_id != backend.account_id:
        raise InvalidAMIIdError(image_id)
    now = _now()
    owner = backend.account_id
    with _lock:
        delay = _delay.get(owner, 0.2)
        report = {
            "ReportId": f"amiur-{uuid.uuid4().hex[:17]}",
            "ImageId": image_id,
            "ResourceTypes": [{"ResourceType": k} for k in kinds],
            "AccountIds": list(dict.fromkeys(accounts)),
            "State": "pending",
            "created": now,
            "ready_at": now + timedelta(seconds=delay),
            "expires": now + timedelta(days=30),
            "region": backend.region_name,
            "kinds": kinds,
            "fail": owner in _fail,
            "entries": [],
        }
        _reports.setdefault(owner, {})[report["ReportId"]] = report
    return ActionResult({"ReportId": report["ReportId"]})


def describe_image_usage_reports(self: Any) -> ActionResult:
    backend = self.ec2_backend
    image_ids = set(self._get_param("ImageIds", []) or [])
    report_ids = set(self._get_param("ReportIds", []) or [])
    filters = self._filters_from_querystring() or {}
    self.error_on_dryrun()
    reports = _visible(backend.account_id, backend.region_name)
    known = {r["ReportId"] for r in reports}
    missing = sorted(report_ids - known)
    if missing:
        raise _Error("InvalidImageUsageReportId.NotFound", f"The report ID '{missing[0]}' does not exist")
    states = set(filters.get("state", []))
    items = []
    for report in sorted(reports, key=lambda r: r["ReportId"]):
        if image_ids and report["ImageId"] not in image_ids:
            continue
        if report_ids and report["ReportId"] not in report_ids:
            continue
        if states and report["State"] not in states:
            continue
        item = {
            "ImageId": report["ImageId"],
            "ReportId": report["ReportId"],
            "ResourceTypes": report["ResourceTypes"],
            "AccountIds": report["AccountIds"],
            "State": report["State"],
            "CreationTime": _iso(report["created"]),
            "ExpirationTime": _iso(report["expires"]),
        }
        if report.get("StateReason"):
            item["StateReason"] = report["StateReason"]
        items.append(item)
    return fidelity.paged_result(self, items, _max_results(self), "ImageUsageReports")


def describe_image_usage_report_entries(self: Any) -> ActionResult:
    backend = self.ec2_backend
    image_ids = set(self._get_param("ImageIds", []) or [])
    report_ids = set(self._get_param("ReportIds", []) or [])
    filters = self._filters_from_querystring() or {}
    self.error_on_dryrun()
    entries = []
    for report in sorted(_visible(backend.account_id, backend.region_name), key=lambda r: r["ReportId"]):
        if report_ids and report["ReportId"] not in report_ids:
            continue
        if image_ids and report["ImageId"] not in image_ids:
            continue
        for entry in report["entries"]:
            if filters.get("account-id") and entry["AccountId"] not in filters["account-id"]:
                continue
            if filters.get("resource-type") and entry["ResourceType"] not in filters["resource-type"]:
                continue
            entries.append(entry)
    return fidelity.paged_result(self, entries, _max_results(self), "ImageUsageReportEntries")


def apply() -> None:
    from moto.ec2.responses.amis import AmisResponse

    AmisResponse.create_image_usage_report = create_image_usage_report
    AmisResponse.describe_image_usage_reports = describe_image_usage_reports
    AmisResponse.describe_image_usage_report_entries = describe_image_usage_report_entries
