"""Role sessions end (AWS) where moto's never do.

AWS: the credentials AssumeRole returns work until their `Expiration`; a request signed with them
after it is refused: `ExpiredToken` with HTTP 403 from query services (EC2, STS: "The security token
included in the request is expired"), `ExpiredToken` with 400 from S3 ("The provided token has
expired."), `ExpiredTokenException` with 403 from JSON services (SSM, Recycle Bin). AssumeRole's
`DurationSeconds` is at least 900 and at most the role's MaxSessionDuration (3,600 unless the role
says more, up to 43,200), and at most 3,600 when the caller is itself an assumed role (role
chaining): a ValidationError otherwise. Stock moto accepts any duration and honours a session
token forever, so a client that never renews its credentials looks fine.

Test knob (POST /_emulator/config, per account the role is in): `"session_seconds": S` ends the
sessions into this account S seconds after AssumeRole, whatever DurationSeconds asked (AWS takes
time: an hour-long session, compressed); null restores AWS's. (`refuse_roles_after`, in
server.py, makes a refusal start mid-run.)
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from moto.core.utils import utcnow
from moto.sts.models import STSBackend

_lock = threading.Lock()
# Session token -> when it stops working (UTC, naive as moto's own times are).
_expiry: dict[str, datetime.datetime] = {}
# Account id -> compressed session lifetime in seconds.
_session_seconds: dict[str, float] = {}

MIN_DURATION = 900
DEFAULT_MAX_DURATION = 3600
CHAINED_MAX_DURATION = 3600


def configure(account: str, seconds: float | None) -> None:
    with _lock:
        if seconds is None:
            _session_seconds.pop(account, None)
        else:
            _session_seconds[account] = float(seconds)


def expired(token: str) -> bool:
    """A token AssumeRole issued whose session has ended."""
    with _lock:
        until = _expiry.get(token)
    return until is not None and utcnow() >= until


def expired_reply(service: str) -> tuple[str, str, str, bool]:
    """(HTTP status, code, message, JSON body?) of AWS's answer to an expired session token."""
    if service == "s3":
        return "400 Bad Request", "ExpiredToken", "The provided token has expired.", False
    message = "The security token included in the request is expired"
    if service in ("ssm", "rbin"):
        return "403 Forbidden", "ExpiredTokenException", message, True
    return "403 Forbidden", "ExpiredToken", message, False


def _role_max_duration(role_arn: str) -> int:
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6:
        return DEFAULT_MAX_DURATION
    try:
        role = iam_backends[parts[4]][parts[1]].get_role_by_arn(role_arn)
    except Exception:  # a role moto was never told about has IAM's default
        return DEFAULT_MAX_DURATION
    return int(role.max_session_duration or DEFAULT_MAX_DURATION)


def invalid_duration(params: dict[str, list[str]], signed_with: str) -> str | None:
    """AssumeRole's ValidationError message for DurationSeconds, if AWS would refuse it."""
    raw = params.get("DurationSeconds", [None])[0]
    if raw is None:
        return None
    try:
        duration = int(raw)
    except ValueError:
        return f"1 validation error detected: Value '{raw}' at 'durationSeconds' failed to satisfy constraint: Member must be a number"
    if duration < MIN_DURATION:
        return (
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            "satisfy constraint: Member must have value greater than or equal to 900"
        )
    with _lock:
        chained = signed_with in _expiry
    if chained and duration > CHAINED_MAX_DURATION:
        return "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    if duration > _role_max_duration(params.get("RoleArn", [""])[0]):
        return "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    return None


def apply() -> None:
    original = STSBackend.assume_role

    def assume_role(self: STSBackend, **kwargs: Any) -> Any:
        role = original(self, **kwargs)
        with _lock:
            seconds = _session_seconds.get(role.account_id)
            if seconds is not None:
                role.expiration = utcnow() + datetime.timedelta(seconds=seconds)
            _expiry[role.session_token] = role.expiration
        return role

    STSBackend.assume_role = assume_role  # type: ignore[method-assign]
