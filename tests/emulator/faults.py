"""Fault injection and throttling, per account, in front of moto (configured via /_emulator/config).

What a client of real AWS meets and must survive without losing track of what it did:

- `throttle`     HTTP 503 `RequestLimitExceeded` (S3 `SlowDown`, query APIs `Throttling`), before the call runs
- `error`        HTTP 500 `InternalError`, before the call runs
- `error_after`  the call runs, then HTTP 500 instead of its answer (AWS may do the work and still fail the response)
- `drop`         the connection is closed before the call runs
- `drop_after`   the call runs, then the connection is closed before the answer (a response lost on the network)
- `latency`      the call is answered `latency_ms` late
- `denied`       HTTP 403, before the call runs: EC2 `UnauthorizedOperation`, S3 and others `AccessDenied`
                 (what an IAM policy without the action gets)
- `not_offered`  HTTP 400 `InvalidAction`, before the call runs (what an endpoint without the action
                 answers: an older partition or region)

`faults`: {"throttle": p, "error": p, "error_after": p, "drop": p, "drop_after": p, "latency": p,
           "latency_ms": 200, "actions": ["ec2:DeregisterImage", ...] | null (every call), "seed": n | null}
One draw per request picks at most one kind (the probabilities add up to at most 1).

`lose_answers`: {"ec2:CreateImage": 1} — the next n calls of that action take effect, then their
connection is closed before the answer (a lost answer, deterministically: the client's retry meets
what the first call did).

`throttle`: {"burst": 50, "refill_per_second": 5} — one bucket for every mutating EC2 call (not
Describe*/Get*/List*): `burst` tokens, refilled at `refill_per_second`; with none left the call is
refused with `RequestLimitExceeded` before it runs.

`throttle`: {"model": "ec2", "compression": 10} — AWS's published per-action token buckets for EC2
(shared EMULATOR.md), each action drawing from its own bucket; `compression` multiplies every refill
rate (the capacities stay), so a benchmark of minutes stands for a run of tens of minutes on AWS.
Counters of refused calls per bucket are in /_emulator/faults as `ec2:Action:throttle`.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections import defaultdict
from typing import Any, Callable

KINDS = ("throttle", "error", "error_after", "drop", "drop_after", "latency", "denied", "not_offered")
READ_PREFIXES = ("Describe", "Get", "List")


def is_mutating(action: str) -> bool:
    service, _, name = action.partition(":")
    return service == "ec2" and not name.startswith(READ_PREFIXES)


class FaultPlan:
    def __init__(self, config: dict[str, Any]) -> None:
        unknown = set(config) - set(KINDS) - {"latency_ms", "actions", "seed"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        self.odds = [(kind, float(config.get(kind) or 0.0)) for kind in KINDS]
        if sum(p for _, p in self.odds) > 1.0:
            raise ValueError("fault probabilities add up to more than 1")
        self.latency = float(config.get("latency_ms") or 200) / 1000.0
        actions = config.get("actions")
        self.actions = set(actions) if actions else None
        self.rng = random.Random(config.get("seed"))

    def draw(self, action: str) -> str | None:
        if self.actions is not None and action not in self.actions:
            return None
        roll = self.rng.random()
        for kind, p in self.odds:
            if roll < p:
                return kind
            roll -= p
        return None


class TokenBucket:
    def __init__(self, config: dict[str, Any]) -> None:
        self.burst = float(config["burst"])
        self.refill = float(config["refill_per_second"])
        if self.burst < 1 or self.refill <= 0:
            raise ValueError("throttle needs burst >= 1 and refill_per_second > 0")
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.refill)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def error_body(service: str, code: str, message: str) -> bytes:
    request_id = str(uuid.uuid4())
    if service == "ec2":
        xml = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    elif service == "s3":
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    else:
        xml = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()


THROTTLE_CODES = {"ec2": "RequestLimitExceeded", "s3": "SlowDown"}
# Services that speak JSON (awsJson1.1, restJson1): errors are JSON with the code in `__type` and
# the `X-Amzn-ErrorType` header, not XML.
JSON_SERVICES = {"ssm", "rbin"}
JSON_CODES = {
    "denied": ("403 Forbidden", "AccessDeniedException"),
    "not_offered": ("400 Bad Request", "UnknownOperationException"),
    "throttle": ("400 Bad Request", "ThrottlingException"),
    "error": ("500 Internal Server Error", "InternalServerException"),
}


def json_error_reply(start_response: Any, code: str, status: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amzn-ErrorType", code),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def error_reply(start_response: Any, action: str, kind: str) -> list[bytes]:
    service, _, name = action.partition(":")
    if service in JSON_SERVICES:
        status, code = JSON_CODES.get(kind, JSON_CODES["error"])
        return json_error_reply(start_response, code, status, f"{kind} ({name}), injected by the emulator")
    if kind == "denied":
        status = "403 Forbidden"
        code = "UnauthorizedOperation" if service == "ec2" else "AccessDenied"
        body = error_body(service, code, f"You are not authorized to perform this operation. Action: {name}")
    elif kind == "not_offered":
        status = "400 Bad Request"
        body = error_body(service, "InvalidAction", f"The action {name} is not valid for this web service.")
    elif kind == "throttle":
        status = "503 Service Unavailable"
        body = error_body(service, THROTTLE_CODES.get(service, "Throttling"), "Request limit exceeded.")
    else:
        status = "500 Internal Server Error"
        code = "InternalFailure" if service not in ("ec2", "s3") else "InternalError"
        body = error_body(service, code, "An internal error has occurred")
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def client_error(start_response: Any, service: str, code: str, message: str) -> list[bytes]:
    """HTTP 400 with AWS's error code, as for a request the service refuses."""
    body = error_body(service, code, message)
    start_response("400 Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def access_denied(start_response: Any, account: str, role: str) -> list[bytes]:
    """AssumeRole refused, as IAM refuses a role whose trust policy does not name the caller."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>User: arn:aws:iam::{account}:user/ami is not authorized "
        f"to perform: sts:AssumeRole on resource: {role}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def drop_connection(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    # The server's attempt to answer now fails; werkzeug treats that as a dropped connection.
    start_response("500 Internal Server Error", [("Content-Length", "0")])
    return []


# AWS's EC2 request token buckets (capacity, refill per second), per account and region.
EC2_BUCKETS: dict[str, tuple[float, float]] = {
    "describe": (100, 20),
    "describe-unfiltered": (50, 10),
    "mutating": (50, 5),
    "DeregisterImage": (100, 5),
    "DeleteSnapshot": (100, 5),
    "ModifyImageAttribute": (100, 5),
    "ModifySnapshotAttribute": (100, 5),
    "CreateSnapshot": (100, 5),
    "TerminateInstances": (100, 5),
    "CopyImage": (100, 1),
    "tags": (100, 10),
    "RunInstances": (5, 2),
}
# DescribeInstances, DescribeSnapshots and DescribeVolumes without a filter or paging draw from a
# smaller bucket.
UNFILTERED = ("DescribeInstances", "DescribeSnapshots", "DescribeVolumes")


def ec2_bucket(name: str, params: dict[str, list[str]]) -> str:
    """Which of EC2's buckets an action draws from."""
    if name in EC2_BUCKETS:
        return name
    if name in ("CreateTags", "DeleteTags"):
        return "tags"
    if name.startswith(READ_PREFIXES):
        if name in UNFILTERED and not any(
            key.startswith(("Filter.", "MaxResults", "NextToken", "InstanceId.", "SnapshotId.", "VolumeId."))
            for key in params
        ):
            return "describe-unfiltered"
        return "describe"
    return "mutating"


class Ec2Buckets:
    """Every EC2 bucket of one account, refill rates multiplied by `compression`."""

    def __init__(self, config: dict[str, Any]) -> None:
        compression = float(config.get("compression") or 1)
        if compression <= 0:
            raise ValueError("compression must be > 0")
        self.buckets = {
            name: TokenBucket({"burst": burst, "refill_per_second": refill * compression})
            for name, (burst, refill) in EC2_BUCKETS.items()
        }

    def take(self, action: str, params: dict[str, list[str]]) -> bool:
        service, _, name = action.partition(":")
        if service != "ec2":
            return True
        name = name.removesuffix("(DryRun)")
        return self.buckets[ec2_bucket(name, params)].take()


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, FaultPlan] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._models: dict[str, Ec2Buckets] = {}
        # Per account, `service:Action` -> how many more of its calls take effect and lose
        # their answer (the connection closes): AWS did the work, the client never heard.
        self._lost: dict[str, dict[str, int]] = {}
        self._injected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def configure_faults(self, account: str, config: dict[str, Any] | None) -> None:
        with self._lock:
            if config:
                self._plans[account] = FaultPlan(config)
            else:
                self._plans.pop(account, None)

    def configure_throttle(self, account: str, config: dict[str, Any] | None) -> None:
        with self._lock:
            if config and config.get("model") == "ec2":
                self._models[account] = Ec2Buckets(config)
                self._buckets.pop(account, None)
            elif config:
                self._buckets[account] = TokenBucket(config)
                self._models.pop(account, None)
            else:
                self._buckets.pop(account, None)
                self._models.pop(account, None)

    def configure_lost_answers(self, account: str, config: dict[str, int] | None) -> None:
        if config and not all(isinstance(n, int) and n >= 0 for n in config.values()):
            raise ValueError("lose_answers takes {\"service:Action\": count}")
        with self._lock:
            if config:
                self._lost[account] = dict(config)
            else:
                self._lost.pop(account, None)

    def record(self, account: str, fault: str) -> None:
        """A fault decided elsewhere (a refused role), counted with the rest."""
        with self._lock:
            self._injected[account][fault] += 1

    def injected(self, account: str) -> dict[str, int]:
        with self._lock:
            return dict(self._injected.get(account, {}))

    def _decide(self, account: str, action: str, params: dict[str, list[str]]) -> str | None:
        with self._lock:
            bucket = self._buckets.get(account)
            model = self._models.get(account)
            if bucket is not None and is_mutating(action) and not bucket.take():
                kind: str | None = "throttle"
            elif model is not None and not model.take(action, params):
                kind = "throttle"
            elif self._lost.get(account, {}).get(action, 0) > 0:
                self._lost[account][action] -= 1
                kind = "drop_after"
            else:
                plan = self._plans.get(account)
                kind = plan.draw(action) if plan else None
            if kind:
                self._injected[account][f"{action}:{kind}"] += 1
            return kind

    def serve(
        self,
        account: str,
        action: str,
        environ: dict[str, Any],
        start_response: Any,
        inner: Callable[[dict[str, Any], Any], Any],
    ) -> Any:
        kind = self._decide(account, action, environ.get("emulator.params", {}))
        if kind is None:
            return inner(environ, start_response)
        if kind in ("throttle", "error", "denied", "not_offered"):
            return error_reply(start_response, action, kind)
        if kind == "drop":
            return drop_connection(environ, start_response)
        if kind == "latency":
            with self._lock:
                delay = self._plans[account].latency if account in self._plans else 0.0
            time.sleep(delay)
            return inner(environ, start_response)
        # error_after / drop_after: the call takes effect, its answer is lost.
        answer = inner(environ, lambda *args, **kwargs: (lambda data: None))
        try:
            for _ in answer:
                pass
        finally:
            close = getattr(answer, "close", None)
            if close:
                close()
        if kind == "error_after":
            return error_reply(start_response, action, "error")
        return drop_connection(environ, start_response)
