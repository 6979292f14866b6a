"""The only importer of the official `kaggle` client (2.2.x), wrapped so every failure is one plain message.

Traps this module handles (see the kaggle-client research note):
- importing `kaggle` authenticates and prints help to stdout: import lazily, silence stdout, catch SystemExit;
- `VERBOSE=1` prints the Authorization header: kompete never passes `--verbose` to the client;
- push failures arrive inside a 200 reply (`resp.error`): turned into errors here;
- HTTP errors are `requests.HTTPError` with a generic text for 429/5xx: mapped to KompeteError subclasses;
- `kernels_output` writes wherever the server's file names point: kompete lists and downloads itself,
  refusing any name that would land outside the destination, and never saves an error body.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kompete.errors import CredentialsError, KaggleError, QuotaError, RateLimitError

# Push errors returned in a 200 body that mean "you are out of something".
_QUOTA_PATTERNS = re.compile(r"maximum|quota|limit|exceed", re.I)
KERNEL_REF = re.compile(r"^[A-Za-z0-9_-]+/[A-Za-z0-9_-]{5,}$")


@dataclass(frozen=True)
class Credentials:
    """Where the credentials come from. Holds no secret: only the method, the file and the user name."""

    method: str  # "env-token", "env-key", "kaggle.json", "access_token", "oauth"
    source: str  # variable names or a file path
    username: str | None
    warnings: tuple[str, ...] = ()


def _config_dirs() -> list[Path]:
    home = Path.home()
    dirs = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(os.environ["KAGGLE_CONFIG_DIR"]))
    dirs += [home / ".kaggle", Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "kaggle"]
    return dirs


def find_credentials() -> Credentials:
    """Which credentials the kaggle client will use, without reading or printing the secret itself."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return Credentials("env-token", "KAGGLE_API_TOKEN", os.environ.get("KAGGLE_USERNAME"))
    token_file = Path.home() / ".kaggle" / "access_token"
    for f in (token_file, token_file.with_suffix(".txt")):
        if f.is_file():
            return Credentials("access_token", str(f), os.environ.get("KAGGLE_USERNAME"), _perm_warnings(f))
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return Credentials("env-key", "KAGGLE_USERNAME/KAGGLE_KEY", os.environ["KAGGLE_USERNAME"])
    for d in _config_dirs():
        f = d / "kaggle.json"
        if f.is_file():
            try:
                username = json.loads(f.read_text()).get("username")
            except (OSError, ValueError, AttributeError):
                raise CredentialsError(f"{f} is not valid JSON",
                                       hint='it should read {"username": "...", "key": "..."}') from None
            return Credentials("kaggle.json", str(f), os.environ.get("KAGGLE_USERNAME") or username,
                               _perm_warnings(f))
    oauth = Path.home() / ".kaggle" / "credentials.json"
    if oauth.is_file():
        return Credentials("oauth", str(oauth), os.environ.get("KAGGLE_USERNAME"), _perm_warnings(oauth))
    raise CredentialsError(
        "no Kaggle credentials found",
        hint="set KAGGLE_USERNAME and KAGGLE_KEY, put kaggle.json in ~/.kaggle (chmod 600), "
             "or set KAGGLE_API_TOKEN")


def _perm_warnings(f: Path) -> tuple[str, ...]:
    try:
        mode = f.stat().st_mode
    except OSError:
        return ()
    return (f"{f} is readable by other users: chmod 600 {f}",) if mode & 0o044 else ()


def error_message(exc: BaseException, what: str) -> KaggleError:
    """Map an exception from the kaggle client to one KompeteError with a plain message."""
    import requests

    if isinstance(exc, requests.HTTPError):
        resp = exc.response
        code = resp.status_code if resp is not None else None
        msg = None
        if resp is not None:
            try:
                body = resp.json()
                msg = body.get("message") or (body.get("error") or {}).get("message")
            except (ValueError, AttributeError):
                msg = None
        detail = f": {msg}" if msg else ""
        if code == 401:
            return CredentialsError(f"{what}: Kaggle rejected the credentials (401){detail}",
                                    hint="check KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json")
        if code == 403:
            return KaggleError(f"{what}: permission denied (403){detail}",
                               hint="join the competition and accept its rules on kaggle.com, or check the slug")
        if code == 404:
            return KaggleError(f"{what}: not found (404){detail}", hint="check the competition or kernel slug")
        if code == 429:
            retry = _retry_after(resp)
            when = f"retry after {retry:g} s" if retry is not None else "wait a few minutes and retry"
            return RateLimitError(f"{what}: Kaggle is rate limiting requests (429)", hint=when, retry_after=retry)
        if code is not None and code >= 500:
            return KaggleError(f"{what}: Kaggle server error ({code})", hint="Kaggle is having trouble; retry later")
        return KaggleError(f"{what}: HTTP {code}{detail}")
    if isinstance(exc, ValueError) and "Expecting value" in str(exc) or type(exc).__name__ == "JSONDecodeError":
        return KaggleError(f"{what}: Kaggle's answer was not JSON (an HTML error page, a proxy or a captive portal?)",
                           hint="retry later; check the network and any proxy settings")
    if isinstance(exc, requests.ConnectionError):
        return KaggleError(f"{what}: cannot reach Kaggle", hint="check the network connection")
    if isinstance(exc, requests.RequestException):
        return KaggleError(f"{what}: request failed ({type(exc).__name__})")
    if isinstance(exc, ValueError):  # the client's own argument checks
        return KaggleError(f"{what}: {exc}")
    return KaggleError(f"{what}: {type(exc).__name__}: {exc}")


def _retry_after(resp: Any) -> float | None:
    value = resp.headers.get("Retry-After") if resp is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _status_name(value: Any) -> str:
    return getattr(value, "name", None) or str(value or "")


@dataclass(frozen=True)
class PushResult:
    ref: str  # owner/slug
    url: str
    version: int | None


@dataclass(frozen=True)
class KernelStatus:
    status: str  # QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_REQUESTED, CANCEL_ACKNOWLEDGED, NEW_SCRIPT
    failure_message: str

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")


@dataclass(frozen=True)
class Submission:
    ref: int
    status: str  # PENDING, COMPLETE, ERROR
    public_score: str
    private_score: str
    description: str
    file_name: str
    date: str
    error: str
    team_name: str = ""


@dataclass(frozen=True)
class LeaderboardEntry:
    team_id: int | None
    team_name: str
    score: str
    date: str


@dataclass(frozen=True)
class Limits:
    today: int
    total: int
    allowed_now: int
    limited_by_total: bool


@dataclass(frozen=True)
class Quota:
    gpu_used_hours: float
    gpu_allowed_hours: float
    refresh: str


class KaggleClient:
    """kompete's view of Kaggle: a few calls, typed results, plain errors."""

    def __init__(self) -> None:
        self.credentials = find_credentials()
        self._api = self._authenticate()

    # ----------------------------------------------------------------- plumbing

    def _authenticate(self) -> Any:
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink):  # `import kaggle` prints auth help to stdout
                from kaggle.api.kaggle_api_extended import KaggleApi

                api = KaggleApi()
                # Never `--verbose` (it logs the Authorization header); LOCALHOST is the client's own
                # switch for a local endpoint, honoured here even when set after `import kaggle`.
                api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
                api.authenticate()
        except SystemExit:
            raise CredentialsError("the kaggle client could not authenticate",
                                   hint=f"credentials from {self.credentials.source} were not accepted") from None
        except ModuleNotFoundError as exc:
            raise KaggleError(f"the kaggle client is not installed ({exc.name})",
                              hint="pip install 'kaggle>=2.2,<2.3' six") from None
        except Exception as exc:  # noqa: BLE001 - token introspection may fail in many ways
            raise error_message(exc, "authenticating") from None
        return api

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the client prints progress and warnings
                return fn(*args, **kwargs)
        except SystemExit:
            raise CredentialsError(f"{what}: the kaggle client lost its credentials") from None
        except Exception as exc:  # noqa: BLE001 - everything from the client becomes one plain message
            raise error_message(exc, what) from None

    @staticmethod
    def check_kernel_ref(ref: str) -> tuple[str, str]:
        if not KERNEL_REF.match(ref or ""):
            raise KaggleError(f"kernel {ref!r} must read OWNER/SLUG with a slug of at least 5 characters")
        owner, slug = ref.split("/")
        return owner, slug

    @property
    def username(self) -> str | None:
        return self._api.config_values.get("username") or self.credentials.username

    # ----------------------------------------------------------------- kernels

    def push(self, folder: Path, timeout_s: int | None = None) -> PushResult:
        meta = json.loads((Path(folder) / "kernel-metadata.json").read_text())
        resp = self._call(f"pushing {meta.get('id')}", self._api.kernels_push, str(folder),
                          str(timeout_s) if timeout_s else None)
        if resp.error:
            cls = QuotaError if _QUOTA_PATTERNS.search(resp.error) else KaggleError
            raise cls(f"push of {meta.get('id')} failed: {resp.error}")
        dropped = [*resp.invalid_competition_sources, *resp.invalid_dataset_sources, *resp.invalid_kernel_sources]
        if dropped:
            raise KaggleError(f"push of {meta.get('id')}: Kaggle dropped unknown sources: {', '.join(dropped)}",
                              hint="check competition_sources/dataset_sources/kernel_sources in the metadata")
        ref = resp.ref.removeprefix("/code/").strip("/") or meta["id"]
        return PushResult(ref=ref, url=resp.url, version=resp.version_number or None)

    def status(self, ref: str, version: int | None = None) -> KernelStatus:
        # Straight to the SDK: `kernels_status` turns 401/403 into a long ValueError about benchmark slugs,
        # and 2.2.4 drops the version.
        owner, slug = self.check_kernel_ref(ref)
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        req = ApiGetKernelSessionStatusRequest()
        req.user_name, req.kernel_slug = owner, slug
        if version:
            req.version_label = f"v{version}"

        def get() -> Any:
            with self._api.build_kaggle_client() as kc:
                return kc.kernels.kernels_api_client.get_kernel_session_status(req)

        resp = self._call(f"status of {ref}" + (f" v{version}" if version else ""), get)
        return KernelStatus(_status_name(resp.status), resp.failure_message or "")

    def output_files(self, ref: str, version: int | None = None) -> tuple[list[tuple[str, str]], str]:
        """[(file name, url)] of a kernel's output, and its log text; names are NOT yet checked."""
        owner, slug = self.check_kernel_ref(ref)
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

        files: list[tuple[str, str]] = []
        log = ""
        token = ""
        while True:
            req = ApiListKernelSessionOutputRequest()
            req.user_name, req.kernel_slug, req.page_size = owner, slug, 100
            if version:
                req.version_label = f"v{version}"
            if token:
                req.page_token = token

            def list_page() -> Any:
                with self._api.build_kaggle_client() as kc:
                    return kc.kernels.kernels_api_client.list_kernel_session_output(req)

            resp = self._call(f"listing the output of {ref}", list_page)
            files += [(f.file_name, f.url) for f in resp.files or []]
            log = log or resp.log or ""
            token = resp.next_page_token
            if not token:
                return files, log

    def download_url(self, url: str, target: Path, what: str) -> Path:
        """GET a signed URL into `target` atomically; an error status or a short body never becomes a file."""
        import requests

        from kompete.paths import atomic_output

        try:
            with requests.get(url, stream=True, timeout=300) as resp:
                resp.raise_for_status()
                expected = resp.headers.get("Content-Length")
                with atomic_output(target) as tmp:
                    size = 0
                    with open(tmp, "wb") as out:
                        for chunk in resp.iter_content(1 << 20):
                            out.write(chunk)
                            size += len(chunk)
                    if expected is not None and int(expected) != size:
                        raise KaggleError(f"{what}: download ended early ({size} of {expected} bytes)")
        except KaggleError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise error_message(exc, what) from None
        return target

    def quota(self) -> Quota:
        resp = self._call("reading the GPU quota", self._api.quota_view)
        gpu = resp.gpu_quota

        def hours(td: Any) -> float:
            return td.total_seconds() / 3600 if td is not None else 0.0

        return Quota(hours(gpu.time_used) if gpu else 0.0, hours(gpu.total_time_allowed) if gpu else 0.0,
                     str(resp.quota_refresh_time or ""))

    # ----------------------------------------------------------------- datasets

    def push_dataset(self, folder: Path, notes: str) -> tuple[str, str, bool]:
        """Version the private dataset described by `folder/dataset-metadata.json`, creating it the first time.

        Returns (owner/slug, url, created).
        """
        meta = json.loads((Path(folder) / "dataset-metadata.json").read_text())
        ref = meta.get("id", "?")
        created = False
        try:
            resp = self._call(f"versioning dataset {ref}", self._api.dataset_create_version, str(folder), notes,
                              True, False, False, "skip")
            missing = bool(resp.error) and "not found" in resp.error.lower()
        except KaggleError as exc:
            if "(404)" not in exc.message:
                raise
            missing = True
        if missing:
            resp = self._call(f"creating dataset {ref}", self._api.dataset_create_new, str(folder), False, True,
                              False, "skip")
            created = True
        if resp.error:
            cls = QuotaError if _QUOTA_PATTERNS.search(resp.error) else KaggleError
            raise cls(f"dataset {ref}: {resp.error}")
        return (resp.ref or ref).removeprefix("/datasets/").removeprefix("datasets/").strip("/"), resp.url, created

    # ----------------------------------------------------------------- competitions

    def submission_limits(self, competition: str) -> Limits:
        r = self._call(f"submission limits of {competition}", self._api.competition_get_submission_limits,
                       competition)
        return Limits(int(r.num_today or 0), int(r.num_total or 0), int(r.num_allowed_now or 0),
                      bool(r.limited_by_total))

    def submit_code(self, competition: str, ref: str, version: int | None, file_name: str, message: str) -> int:
        self.check_kernel_ref(ref)
        resp = self._call(f"submitting {ref} to {competition}", self._api.competition_submit_code,
                          file_name, message, competition, ref, version, True)
        if not resp.ref:
            raise KaggleError(f"submitting {ref} to {competition}: Kaggle returned no submission "
                              f"({resp.message or 'no message'})")
        return int(resp.ref)

    def submissions(self, competition: str) -> list[Submission]:
        """The newest page of the user's submissions (enough to find one just made)."""
        return self.submissions_page(competition)[0]

    # The client's own listing methods drop the next-page token (the leaderboard one prints it), so long
    # lists are read with the SDK request it builds itself, one page at a time, inside the error mapping.
    def submissions_page(self, competition: str, page_token: str = "",
                         page_size: int = 50) -> tuple[list[Submission], str]:
        """One page of the user's submissions, newest first, and the next page's token ('' at the end)."""
        from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest

        req = _paged(ApiListSubmissionsRequest(), competition, page_token, page_size)
        resp = self._call(f"listing submissions to {competition}", self._sdk_call, "list_submissions", req)
        rows = [Submission(ref=int(s.ref), status=_status_name(s.status), public_score=s.public_score or "",
                           private_score=s.private_score or "", description=s.description or "",
                           file_name=s.file_name or "", date=_date(s.date), error=s.error_description or "",
                           team_name=s.team_name or "")
                for s in resp.submissions or [] if s is not None]
        return rows, resp.next_page_token or ""

    def leaderboard_page(self, competition: str, page_token: str = "",
                         page_size: int = 200) -> tuple[list[LeaderboardEntry], str]:
        """One page of the public leaderboard in rank order, and the next page's token ('' at the end)."""
        from kagglesdk.competitions.types.competition_api_service import ApiGetLeaderboardRequest

        req = _paged(ApiGetLeaderboardRequest(), competition, page_token, page_size)
        resp = self._call(f"reading the leaderboard of {competition}", self._sdk_call, "get_leaderboard", req)
        rows = [LeaderboardEntry(team_id=int(e.team_id) if e.team_id else None, team_name=e.team_name or "",
                                 score=e.score or "", date=_date(e.submission_date))
                for e in resp.submissions or [] if e is not None]
        return rows, resp.next_page_token or ""

    def _sdk_call(self, method: str, request: Any) -> Any:
        with self._api.build_kaggle_client() as kc:
            return getattr(kc.competitions.competition_api_client, method)(request)

    def download_leaderboard(self, competition: str, dest: Path) -> Path:
        """The public leaderboard as a CSV inside `dest` (unpacked safely); returns the CSV's path."""
        from kompete.data.download import safe_extract

        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        self._call(f"downloading the leaderboard of {competition}", self._api.competition_leaderboard_download,
                   competition, str(dest), True)
        archive = dest / f"{competition}.zip"
        safe_extract(archive, dest / f"{competition}-leaderboard")
        archive.unlink()
        csvs = sorted((dest / f"{competition}-leaderboard").glob("*.csv"))
        if not csvs:
            raise KaggleError(f"the leaderboard of {competition} held no CSV file")
        return csvs[0]

    def download_competition(self, competition: str, dest: Path) -> Path:
        """The competition's files as one archive inside `dest`; the caller unpacks it (safe_extract)."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        self._call(f"downloading {competition}", self._api.competition_download_files, competition, str(dest),
                   True, True)
        found = sorted(dest.glob(f"{competition}.*"))
        archives = [p for p in found if p.suffix == ".zip"]
        if not archives:
            raise KaggleError(f"downloading {competition}: no archive arrived in {dest}")
        return archives[0]


def download_competition(competition: str, dest: Path) -> Path:
    """Used by `kompete data download`: fetch COMPETITION's archive into `dest` and return its path."""
    return KaggleClient().download_competition(competition, dest)


def _paged(request: Any, competition: str, page_token: str, page_size: int) -> Any:
    request.competition_name, request.page_size = competition, page_size
    if page_token:
        request.page_token = page_token
    return request


def _date(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")
