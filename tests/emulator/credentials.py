"""The credential sources that are not AWS APIs moto serves: the ECS container credentials
endpoint, the EC2 instance metadata service (IMDSv2), and the IAM Identity Center (SSO) portal's
GetRoleCredentials. Each hands out the emulator's test credentials (`AKIATEST` + a 12-digit
account id) for the account the test names, in the wire format of the real service:

- container: `AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/_emulator/container-credentials/ACCOUNT`
  answers `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` (the ECS agent's format).
- IMDSv2: `AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT/`; `PUT /latest/api/token`
  (with `X-aws-ec2-metadata-token-ttl-seconds`) gives a token that every GET must carry in
  `X-aws-ec2-metadata-token` (401 otherwise, as IMDSv2 does). The instance's role is named
  `ami-test-ACCOUNT` (the account set with `POST /_emulator/config {"account", "instance_role":
  true}`): `GET /latest/meta-data/iam/security-credentials/` lists it, and
  `.../ami-test-ACCOUNT` answers `{"Code": "Success", "AccessKeyId", ...}`.
- SSO: `GET /federation/credentials?account_id=ACCOUNT&role_name=R` with the
  `x-amz-sso_bearer_token` header (401 without, or with a token not starting `emulator-sso-`,
  the prefix of the tokens tests cache) answers `{"roleCredentials": {...}}`, expiration in epoch
  milliseconds, as the portal API does.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
from typing import Any
from urllib.parse import parse_qs

_ACCOUNT = re.compile(r"^\d{12}$")
_tokens: set[str] = set()
_lock = threading.Lock()
# The account whose role the emulated instance has (one instance per emulator): set with
# POST /_emulator/config {"account": ID, "instance_role": true}.
instance_account = ""


def _expiration() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)


def _keys(account: str) -> dict[str, str]:
    return {
        "AccessKeyId": f"AKIATEST{account}",
        "SecretAccessKey": "emulator-secret",
        "Token": f"emulator-session-{account}",
    }


def _reply(
    start_response: Any,
    status: str,
    payload: Any,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(data)))] + (headers or []),
    )
    return [data]


def handles(path: str) -> bool:
    return (
        path.startswith("/_emulator/container-credentials/")
        or path.startswith("/latest/")
        or path == "/federation/credentials"
    )


def serve(environ: dict[str, Any], start_response: Any, path: str) -> list[bytes]:
    if path.startswith("/_emulator/container-credentials/"):
        return _container(environ, start_response, path.rsplit("/", 1)[-1])
    if path.startswith("/latest/"):
        return _imds(environ, start_response, path)
    return _sso(environ, start_response)


def _container(environ: dict[str, Any], start_response: Any, account: str) -> list[bytes]:
    if not _ACCOUNT.match(account):
        return _reply(start_response, "404 Not Found", {"error": "no such account"})
    keys = _keys(account)
    keys["Expiration"] = _expiration().strftime("%Y-%m-%dT%H:%M:%SZ")
    return _reply(start_response, "200 OK", keys)


def _imds(environ: dict[str, Any], start_response: Any, path: str) -> list[bytes]:
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/latest/api/token":
        ttl = environ.get("HTTP_X_AWS_EC2_METADATA_TOKEN_TTL_SECONDS", "")
        if method != "PUT" or not ttl.isdigit():
            return _reply(start_response, "400 Bad Request", b"", "text/plain")
        token = secrets.token_urlsafe(32)
        with _lock:
            _tokens.add(token)
        # IMDSv2 echoes the token's lifetime; the SDKs refuse a token without it.
        return _reply(
            start_response,
            "200 OK",
            token.encode(),
            "text/plain",
            [("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
        )
    with _lock:
        authorised = environ.get("HTTP_X_AWS_EC2_METADATA_TOKEN", "") in _tokens
    if not authorised:
        return _reply(start_response, "401 Unauthorized", b"", "text/plain")
    prefix = "/latest/meta-data/iam/security-credentials/"
    if path == prefix:
        if not instance_account:
            return _reply(start_response, "404 Not Found", b"", "text/plain")
        return _reply(start_response, "200 OK", f"ami-test-{instance_account}".encode(), "text/plain")
    if path.startswith(prefix):
        role = path[len(prefix):]
        account = role.removeprefix("ami-test-")
        if not _ACCOUNT.match(account):
            return _reply(start_response, "404 Not Found", b"", "text/plain")
        keys = _keys(account)
        keys.update(
            {
                "Code": "Success",
                "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "Expiration": _expiration().strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        return _reply(start_response, "200 OK", keys)
    return _reply(start_response, "404 Not Found", b"", "text/plain")


def _sso(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    # Only a token a test cached as `aws sso login` would (see tests/credentials.rs) is valid.
    if not environ.get("HTTP_X_AMZ_SSO_BEARER_TOKEN", "").startswith("emulator-sso-"):
        return _reply(
            start_response,
            "401 Unauthorized",
            {"message": "Session token not found or invalid"},
        )
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    account = query.get("account_id", "")
    if not _ACCOUNT.match(account) or not query.get("role_name"):
        return _reply(start_response, "400 Bad Request", {"message": "account_id and role_name are required"})
    keys = _keys(account)
    return _reply(
        start_response,
        "200 OK",
        {
            "roleCredentials": {
                "accessKeyId": keys["AccessKeyId"],
                "secretAccessKey": keys["SecretAccessKey"],
                "sessionToken": keys["Token"],
                "expiration": int(_expiration().timestamp() * 1000),
            }
        },
    )
