"""The project's AWS emulator: moto in server mode, with the fidelity layer and admin routes.

Usage: python server.py [--host 127.0.0.1] [--port 0] [--endpoint-file F] [--parent-pid PID]

Prints `endpoint=http://HOST:PORT` on stdout once it accepts connections (port 0 picks a free one).
With --parent-pid it exits when that process is gone, so a test binary never leaks a server.

Admin routes (test tooling only; the `ami` binary never calls them):
  GET  /_emulator/health
  GET  /_emulator/requests?account=ID          per-action request counts {"ec2:DescribeImages": 3, ...}
  GET  /_emulator/requests/attributes?account=ID   DescribeImageAttribute reads per Attribute
  POST /_emulator/requests/reset?account=ID
  POST /_emulator/backdate   {"account", "region", "resource_id", "time": RFC 3339, "field": "last_launched"?}
  POST /_emulator/config     {"account", "page_size": N|null, "latency_ms": N|null,
                              "faults": {...}|null, "throttle": {...}|null,
                              "refuse_roles": ["NAME", ...]|null,
                              "refuse_roles_after": "service:Action"|null,
                              "session_seconds": S|null,
                              "snapshot_results": {"snap-...": "skipped"}|null,
                              "usage_report_delay": seconds, "usage_report_fail": bool,
                              "timing": {...}|null, "lose_answers": {"ec2:Action": n}|null}
                             cap DescribeImages/Snapshots pages; add network latency per request;
                             inject faults; throttle mutating calls with a token bucket (see faults.py);
                             AWS takes time (see timing.py); lose the answers of the next n calls;
                             refuse AssumeRole into the account's roles (once it served an action);
                             end its role sessions after S seconds (see sessions.py)
  GET  /_emulator/faults?account=ID            faults injected, per `service:Action:kind`
  POST /_emulator/managed    {"account", "region", "image_id", "service": "backup"|"dlm"|"image-builder"}
                             the image was made by that AWS service (see lineage.py)

Credential sources (see credentials.py): /_emulator/container-credentials/ACCOUNT (ECS), /latest/...
(IMDSv2, the instance role of the account configured with {"instance_role": true}), and
/federation/credentials (the IAM Identity Center portal's GetRoleCredentials).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import threading
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

# Must be set before moto loads its EC2 models: no ~1,300 preloaded Amazon images per region.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import credentials  # noqa: E402
import faults  # noqa: E402
import fidelity  # noqa: E402
import lineage  # noqa: E402
import recycle_bin  # noqa: E402
import sessions  # noqa: E402
import timing  # noqa: E402
import usage_reports  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")


class Counters:
    """Requests per account and `service:Action`, for benchmarks and no-mutation assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # DescribeImageAttribute per `Attribute`: one action reads very different things.
        self._attributes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, account: str, action: str, attribute: str | None = None) -> None:
        with self._lock:
            self._counts[account][action] += 1
            if attribute:
                self._attributes[account][attribute] += 1

    def get(self, account: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(account, {}))

    def attributes(self, account: str) -> dict[str, int]:
        with self._lock:
            return dict(self._attributes.get(account, {}))

    def reset(self, account: str) -> None:
        with self._lock:
            self._counts.pop(account, None)
            self._attributes.pop(account, None)


def s3_action(method: str, path: str, query: dict[str, list[str]]) -> str:
    parts = [p for p in path.split("/") if p]
    has_key = len(parts) > 1
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "GET":
        if has_key:
            return "GetObject"
        if not parts:
            return "ListBuckets"
        if "list-type" in query:
            return "ListObjectsV2"
        if "location" in query:
            return "GetBucketLocation"
        return "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        return "PutObject" if has_key else "CreateBucket"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    return f"{method}"


class EmulatorApp:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counters = Counters()
        # Per-account added latency in seconds: the round trip to a real AWS endpoint, which the
        # emulator on loopback lacks. Sleeping releases the GIL, so concurrent clients overlap it
        # as they would on a network; the emulator's own work stays serialised.
        self.latency: dict[str, float] = {}
        self.faults = faults.Faults()
        # Role ARNs whose AssumeRole is refused (AccessDenied), to test accounts that cannot be
        # reached; set per account with {"account": ID, "refuse_roles": ["NAME", ...]}.
        self.refused_roles: set[str] = set()
        # Per account: the `service:Action` after which its refused roles are refused (until
        # then AssumeRole succeeds: a trust policy changed mid-run).
        self.refuse_after: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if credentials.handles(path):
            return credentials.serve(environ, start_response, path)
        if path.startswith("/_emulator/"):
            return self.admin(environ, start_response, path)
        account, action = self.count(environ)
        delay = self.latency.get(account or "")
        if delay:
            time.sleep(delay)
        if account is None:
            return self.inner(environ, start_response)
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN", "")
        if sessions.expired(token):
            status, code, message, as_json = sessions.expired_reply(action.partition(":")[0])
            if as_json:
                return faults.json_error_reply(start_response, code, status, message)
            body = faults.error_body(action.partition(":")[0], code, message)
            start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
            return [body]
        if action == "sts:AssumeRole":
            params = environ.get("emulator.params", {})
            role = params.get("RoleArn", [""])[0]
            if role in self.refused_roles and self.refusing(role):
                # Counted as a fault of the role's account, so a test can tell how often
                # a refused role was asked for.
                self.faults.record(role.split(":")[4], "sts:AssumeRole:refused")
                return faults.access_denied(start_response, account, role)
            invalid = sessions.invalid_duration(params, token)
            if invalid is not None:
                return faults.client_error(start_response, "sts", "ValidationError", invalid)
        # AWS takes time: an id made moments ago is unknown to the calls that name it.
        refusal = timing.refuse_unknown(
            environ.get("emulator.region", ""), action, environ.get("emulator.params", {})
        )
        if refusal is not None:
            return faults.client_error(start_response, "ec2", *refusal)
        inner = self.inner
        if action.startswith("rbin:"):
            # moto has no Recycle Bin: recycle_bin.py serves it.
            region = environ.get("emulator.region", "us-east-1")

            def inner(env: dict[str, Any], respond: Any) -> Any:
                return recycle_bin.serve(env, respond, account, region)

        return self.faults.serve(account, action, environ, start_response, inner)

    def refusing(self, role: str) -> bool:
        owner = role.split(":")[4] if role.count(":") >= 5 else ""
        after = self.refuse_after.get(owner)
        return after is None or self.counters.get(owner).get(after, 0) > 0

    def count(self, environ: dict[str, Any]) -> tuple[str | None, str]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        match = _CREDENTIAL.search(auth)
        if not match:
            return None, ""
        access_key, _region, service = match.groups()
        import moto.iam.models as iam_models

        account = iam_models.get_account_id_from(access_key)
        environ["emulator.region"] = _region
        if service == "rbin":
            action = recycle_bin.action_of(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
            attribute = None
        elif service == "s3":
            action = s3_action(
                environ.get("REQUEST_METHOD", ""),
                environ.get("PATH_INFO", ""),
                parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            )
        else:
            action = "Unknown"
            attribute = None
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if target:
                # JSON protocols (SSM: `AmazonSSM.GetParameter`) name the action in a header.
                action = target.rpartition(".")[2]
            elif environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                params = parse_qs(body.decode("utf-8", "replace"))
                environ["emulator.params"] = params
                action = params.get("Action", ["Unknown"])[0]
                if action == "DescribeImageAttribute":
                    attribute = params.get("Attribute", ["Unknown"])[0]
                # A DryRun request only asks whether the call would be allowed; it changes
                # nothing, and is counted apart so tests can tell it from the real call.
                if params.get("DryRun", ["false"])[0].lower() == "true":
                    action += "(DryRun)"
        self.counters.add(account, f"{service}:{action}", None if service == "s3" else attribute)
        return account, f"{service}:{action}"

    def admin(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        body: dict[str, Any] = {}
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw or b"{}")
        try:
            if path == "/_emulator/health":
                result: Any = {"ok": True}
            elif path == "/_emulator/requests":
                result = self.counters.get(query["account"])
            elif path == "/_emulator/requests/attributes":
                result = self.counters.attributes(query["account"])
            elif path == "/_emulator/requests/reset":
                self.counters.reset(query["account"])
                result = {"ok": True}
            elif path == "/_emulator/backdate":
                from moto.core.parse import default_timestamp_parser

                when = default_timestamp_parser(body["time"])
                fidelity.backdate(body["account"], body["region"], body["resource_id"], when, body.get("field"))
                result = {"ok": True}
            elif path == "/_emulator/faults":
                result = self.faults.injected(query["account"])
            elif path == "/_emulator/managed":
                lineage.mark_managed(body["account"], body["region"], body["image_id"], body["service"])
                result = {"ok": True}
            elif path == "/_emulator/config":
                if "page_size" in body:
                    fidelity.set_page_size_cap(body["account"], body["page_size"])
                if "snapshot_results" in body:
                    fidelity.set_snapshot_results(body["account"], body["snapshot_results"])
                if "usage_report_delay" in body or "usage_report_fail" in body:
                    usage_reports.configure(
                        body["account"], body.get("usage_report_delay"), body.get("usage_report_fail")
                    )
                if "latency_ms" in body:
                    if body["latency_ms"]:
                        self.latency[body["account"]] = float(body["latency_ms"]) / 1000.0
                    else:
                        self.latency.pop(body["account"], None)
                if "faults" in body:
                    self.faults.configure_faults(body["account"], body["faults"])
                if "throttle" in body:
                    self.faults.configure_throttle(body["account"], body["throttle"])
                if "lose_answers" in body:
                    self.faults.configure_lost_answers(body["account"], body["lose_answers"])
                if "timing" in body:
                    timing.configure(body["account"], body["timing"])
                if body.get("instance_role"):
                    credentials.instance_account = body["account"]
                if "refuse_roles" in body:
                    prefix = f"arn:aws:iam::{body['account']}:role/"
                    self.refused_roles = {r for r in self.refused_roles if not r.startswith(prefix)}
                    self.refused_roles.update(prefix + name for name in body["refuse_roles"] or [])
                if "refuse_roles_after" in body:
                    if body["refuse_roles_after"]:
                        self.refuse_after[body["account"]] = str(body["refuse_roles_after"])
                    else:
                        self.refuse_after.pop(body["account"], None)
                if "session_seconds" in body:
                    sessions.configure(body["account"], body["session_seconds"])
                result = {"ok": True}
            else:
                return self.reply(start_response, "404 Not Found", {"error": path})
        except (ValueError, TypeError) as bad:
            return self.reply(start_response, "400 Bad Request", {"error": str(bad)})
        except KeyError as missing:
            return self.reply(start_response, "400 Bad Request", {"error": f"missing or unknown {missing}"})
        return self.reply(start_response, "200 OK", result)

    @staticmethod
    def reply(start_response: Any, status: str, payload: Any) -> list[bytes]:
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


class RequestHandler(MotoRequestHandler):
    """Werkzeug drops headers with underscores from the WSGI environ (to stop spoofing through
    proxies); the SSO portal's `x-amz-sso_bearer_token` has one, and must reach credentials.py."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        token = self.headers.get("x-amz-sso_bearer_token")
        if token is not None:
            environ["HTTP_X_AMZ_SSO_BEARER_TOKEN"] = token
        return environ


def watch_parent(pid: int) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            os._exit(0)
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--endpoint-file")
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args()

    fidelity.apply()
    sessions.apply()
    app = EmulatorApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=RequestHandler)
    endpoint = f"http://{args.host}:{server.server_port}"
    os.environ["MOTO_PORT"] = str(server.server_port)
    if args.endpoint_file:
        with open(args.endpoint_file, "w", encoding="utf-8") as f:
            f.write(endpoint + "\n")
    if args.parent_pid:
        threading.Thread(target=watch_parent, args=(args.parent_pid,), daemon=True).start()
    print(f"endpoint={endpoint}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
