"""A local fake Kaggle API on 127.0.0.1 that the real `kaggle` client talks to.

The client is pointed at it with `KAGGLE_API_ENVIRONMENT=LOCALHOST` plus `HTTP_PROXY`/`HTTPS_PROXY` set to this
server: every request then arrives here, in proxy form (`POST http://localhost/api/v1/<Service>/<Method>`).
A request for any host other than localhost/127.0.0.1 (or an HTTPS `CONNECT`) is answered 403 and recorded in
`escaped`, so a test can assert that nothing tried to leave loopback.

Routes are `"<package>.<Service>/<Method>"`; replies are `Reply(status, body, headers)` where `body` is a dict
(sent as JSON) or bytes, or a function of the request's JSON body returning a Reply. `queue(method, r1, r2, ...)` answers successive calls in turn (the last one repeats).

`script_kernel(slug, statuses, files=...)` gives one kernel its own status sequence and output files (other
kernels keep the shared routes), and `limit_sessions(n)` refuses a push while n scripted kernels are still
running, the way Kaggle refuses a third GPU batch session.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = {"localhost", "127.0.0.1"}


@dataclass
class Reply:
    status: int = 200
    body: dict | list | bytes = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass
class Call:
    method: str  # "<Service>/<Method>" or "GET /blob/<name>" or "PUT ..."
    auth: str | None
    body: dict | bytes


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class FakeKaggle:
    """Start with `FakeKaggle().start()`; `reset()` between tests; `stop()` at the end."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.escaped: list[str] = []
        self.routes: dict[str, list] = {}
        self.blobs: dict[str, Reply] = {}
        self.kernels: dict[str, dict] = {}  # slug -> {"statuses": [...], "files": [...], "log": str}
        self.session_limit: int | None = None
        self.active: set[str] = set()  # slugs pushed and not yet answered with a finished status
        self.refused_pushes: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> "FakeKaggle":
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.reset()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def blob_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/blob/{name}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.escaped.clear()
            self.blobs.clear()
            self.routes = {k: [v] for k, v in default_routes().items()}
            self.kernels.clear()
            self.session_limit = None
            self.active.clear()
            self.refused_pushes.clear()
        self.add_blob("images.zip", zip_bytes({f"{i}.png": b"\x89PNG fake" for i in range(3)}))
        self.add_blob("metrics.csv", b"step,loss_g,loss_d\n1,0.5,0.6\n")
        self.add_blob("data.zip", zip_bytes({"all-dogs/1.jpg": b"jpg", "Annotation/n1/1": b"<xml/>"}))
        self.set_outputs(["images.zip", "metrics.csv"], log="[kompete] step 1\n[kompete] done\n")
        self.set("competitions.CompetitionApiService/DownloadDataFiles",
                 Reply(302, b"", {"Location": self.blob_url("data.zip")}))

    # ----------------------------------------------------------------- configuring replies

    def set(self, method: str, *replies: Reply) -> None:
        with self._lock:
            self.routes[method] = list(replies)

    queue = set

    def error(self, method: str, status: int, message: str | None = None, headers: dict | None = None,
              google_style: bool = False) -> None:
        """Answer `method` with an HTTP error, in Kaggle's JSON shape, Google's shape or as plain HTML."""
        if google_style:
            body: dict | bytes = {"error": {"code": status, "message": message or "error", "status": "X"}}
        elif message is None:
            body = b"<html><body>Server Error</body></html>"
        else:
            body = {"code": status, "message": message}
        self.set(method, Reply(status, body, headers or {}))

    def add_blob(self, name: str, data: bytes, status: int = 200) -> str:
        with self._lock:
            self.blobs[name] = Reply(status, data, {})
        return self.blob_url(name)

    def set_outputs(self, names: list[str], log: str = "", urls: dict[str, str] | None = None) -> None:
        files = [{"fileName": n, "url": (urls or {}).get(n, self.blob_url(n.rsplit("/", 1)[-1]))} for n in names]
        self.set("kernels.KernelsApiService/ListKernelSessionOutput", Reply(200, {"files": files, "log": log}))

    def script_kernel(self, slug: str, statuses: list[str], files: dict[str, bytes] | None = None,
                      log: str = "", failure: str = "") -> None:
        """Kernel `slug` (no owner) answers `statuses` to successive status calls (the last repeats) and lists
        `files` (name -> bytes, served from its own blobs) as its output; `failure` rides on an ERROR."""
        for name, data in (files or {}).items():
            self.add_blob(f"{slug}/{name}", data)
        with self._lock:
            self.kernels[slug] = {"statuses": list(statuses), "failure": failure, "log": log,
                                  "files": [{"fileName": n, "url": self.blob_url(f"{slug}/{n}")} for n in files or {}]}

    def limit_sessions(self, n: int) -> None:
        with self._lock:
            self.session_limit = n

    def _kernel_reply(self, method: str, body) -> Reply | None:
        """A scripted kernel's own answer, or None for the shared routes (called under the lock)."""
        if not isinstance(body, dict):
            return None
        if method == "kernels.KernelsApiService/SaveKernel":
            slug = str(body.get("slug", "")).split("/")[-1]
            if self.session_limit is not None and slug not in self.active and len(self.active) >= self.session_limit:
                self.refused_pushes.append(slug)
                return Reply(200, {"error": f"Maximum batch GPU session count of {self.session_limit} reached"})
            if self.session_limit is not None:
                self.active.add(slug)
            return None
        script = self.kernels.get(str(body.get("kernelSlug")))
        if script is None:
            return None
        if method == "kernels.KernelsApiService/GetKernelSessionStatus":
            statuses = script["statuses"]
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            if status in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"):
                self.active.discard(body["kernelSlug"])
            return Reply(200, {"status": status, "failureMessage": script["failure"] if status == "ERROR" else ""})
        if method == "kernels.KernelsApiService/ListKernelSessionOutput":
            return Reply(200, {"files": script["files"], "log": script["log"]})
        return None

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    # ----------------------------------------------------------------- serving

    def _next(self, method: str) -> Reply:
        with self._lock:
            replies = self.routes.get(method)
            if not replies:
                return Reply(404, {"code": 404, "message": f"NotFound: {method}"})
            return replies.pop(0) if len(replies) > 1 else replies[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeKaggle

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _target(self) -> tuple[str, str] | None:
        parts = urlsplit(self.path)
        host = (parts.hostname or (self.headers.get("Host") or "").split(":")[0]).lower()
        if host and host not in LOOPBACK:
            self.server_state.escaped.append(f"{self.command} {self.path}")
            self._send(Reply(403, {"code": 403, "message": f"fake kaggle: refusing non-loopback host {host}"}))
            return None
        return host, parts.path

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_CONNECT(self) -> None:  # an HTTPS request through the proxy: it was meant for the internet
        self.server_state.escaped.append(f"CONNECT {self.path}")
        self._send(Reply(403, b"no tunnels"))

    def do_POST(self) -> None:
        raw = self._body()
        target = self._target()
        if target is None:
            return
        method = target[1].removeprefix("/api").removeprefix("/v1/")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = raw
        state = self.server_state
        with state._lock:
            state.calls.append(Call(method, self.headers.get("Authorization"), body))
            scripted = state._kernel_reply(method, body)
        reply = scripted or state._next(method)
        self._send(reply(body) if callable(reply) else reply)

    def do_GET(self) -> None:
        target = self._target()
        if target is None:
            return
        name = target[1].removeprefix("/blob/")
        state = self.server_state
        with state._lock:
            state.calls.append(Call(f"GET {target[1]}", self.headers.get("Authorization"), b""))
            reply = state.blobs.get(name, Reply(404, b"<html>no such blob</html>"))
        self._send(reply)

    def do_PUT(self) -> None:
        raw = self._body()
        target = self._target()
        if target is None:
            return
        with self.server_state._lock:
            self.server_state.calls.append(Call(f"PUT {target[1]}", self.headers.get("Authorization"), raw))
        self._send(Reply(200, b""))

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, (bytes, bytearray)):
            raw, ctype = bytes(reply.body), "application/octet-stream"
        else:
            raw, ctype = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.headers.get("Content-Type", ctype))
        self.send_header("Content-Length", str(len(raw)))
        for k, v in reply.headers.items():
            if k != "Content-Type":
                self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


def default_routes() -> dict:
    leaderboard = zip_bytes({"lb.csv": b"TeamId,TeamName,SubmissionDate,Score\n1,alice,2026-11-01 10:00:00,12.3\n"})
    return {
        "security.OAuthService/IntrospectToken": Reply(200, {"active": True, "username": "alice"}),
        "kernels.KernelsApiService/SaveKernel": lambda body: Reply(200, {  # echoes the pushed id
            "ref": f"/code/{body.get('slug')}", "url": f"https://www.kaggle.com/code/{body.get('slug')}",
            "versionNumber": 7}),
        "kernels.KernelsApiService/GetKernelSessionStatus": Reply(200, {"status": "COMPLETE"}),
        "kernels.KernelsApiService/GetAcceleratorQuotaStatistics": Reply(200, {
            "gpuQuota": {"timeUsed": "36000s", "totalTimeAllowed": "108000s"},
            "quotaRefreshTime": "2026-12-05T00:00:00Z"}),
        "competitions.CompetitionApiService/CreateCodeSubmission": Reply(200, {
            "message": "Your submission was successfully saved", "ref": 45}),
        "competitions.CompetitionApiService/ListSubmissions": Reply(200, {"submissions": [
            {"ref": 45, "date": "2026-11-01T10:20:30.123Z", "description": "kompete v7", "fileName": "images.zip",
             "status": "COMPLETE", "publicScore": "12.34567"}]}),
        "competitions.CompetitionApiService/GetSubmissionLimits": Reply(200, {
            "numToday": 1, "numTotal": 3, "numAllowedNow": 4}),
        "competitions.CompetitionApiService/DownloadLeaderboard": Reply(200, leaderboard),
        "blobs.BlobApiService/StartBlobUpload": lambda body: Reply(200, {
            "token": f"blob-{body.get('name')}", "createUrl": "http://127.0.0.1/upload/" + str(body.get("name"))}),
        "datasets.DatasetApiService/CreateDatasetVersion": lambda body: Reply(200, {
            "ref": f"{body.get('ownerSlug')}/{body.get('datasetSlug')}", "status": "ok",
            "url": f"https://www.kaggle.com/datasets/{body.get('ownerSlug')}/{body.get('datasetSlug')}"}),
        "datasets.DatasetApiService/CreateDataset": lambda body: Reply(200, {
            "ref": f"{body.get('ownerSlug')}/{body.get('slug')}", "status": "ok",
            "url": f"https://www.kaggle.com/datasets/{body.get('ownerSlug')}/{body.get('slug')}"}),
    }


def start() -> FakeKaggle:
    return FakeKaggle().start()
