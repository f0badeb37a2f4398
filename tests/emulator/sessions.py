"""Role sessions end (AWS) where moto's never do.

AWS: the credentials AssumeRole returns work until their `Expiration`; a request signed with them
after it is refused with `ExpiredToken` ("The security token included in the request is expired"),
and `DurationSeconds` must be between 900 and 43,200 (a ValidationError otherwise). Stock moto
accepts any duration and honours a session token forever, so a client that never refreshes its
credentials looks fine.

Test knobs (POST /_emulator/config, per account the role is in):
- `"session_seconds": S`: sessions into this account end S seconds after AssumeRole, whatever
  DurationSeconds asked (AWS takes time: an hour-long session, compressed). Null restores AWS's.
- `"refuse_roles_after": "service:Action"`: the roles named by `refuse_roles` are refused only once
  this account has served that action (the role's trust policy changed mid-run), so a run's first
  AssumeRole succeeds and a later refresh does not.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from moto.core.utils import utcnow
from moto.sts.exceptions import STSValidationError
from moto.sts.models import STSBackend

_lock = threading.Lock()
# Session token -> when it stops working (UTC, naive as moto's own times are).
_expiry: dict[str, datetime.datetime] = {}
# Account id -> compressed session lifetime in seconds.
_session_seconds: dict[str, float] = {}

MIN_DURATION = 900
MAX_DURATION = 43200


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


def apply() -> None:
    original = STSBackend.assume_role

    def assume_role(self: STSBackend, **kwargs: Any) -> Any:
        duration = kwargs.get("duration")
        if duration is not None and not MIN_DURATION <= int(duration) <= MAX_DURATION:
            bound = "greater than or equal to 900" if int(duration) < MIN_DURATION else "less than or equal to 43200"
            raise STSValidationError(
                f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
                f"satisfy constraint: Member must have value {bound}"
            )
        role = original(self, **kwargs)
        with _lock:
            seconds = _session_seconds.get(role.account_id)
            if seconds is not None:
                role.expiration = utcnow() + datetime.timedelta(seconds=seconds)
            _expiry[role.session_token] = role.expiration
        return role

    STSBackend.assume_role = assume_role  # type: ignore[method-assign]
