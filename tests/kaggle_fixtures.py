"""Fixtures that point the real kaggle client at tests/fake_kaggle.py, with throwaway credentials.

`fake_kaggle` (function scope) gives a reset FakeKaggle server and sets the environment so that both this
process and `run_kompete(...)` subprocesses talk only to it:
- HOME and KAGGLE_CONFIG_DIR are a temporary home holding a kaggle.json made now, with a random key
  (`FAKE_CREDENTIALS`), and KAGGLE_USERNAME/KAGGLE_KEY carry the same values;
- KAGGLE_API_ENVIRONMENT=LOCALHOST and HTTP(S)_PROXY aim every request at the fake server;
- a socket guard fails any connection from this process to a non-loopback address, and the server itself
  records (and refuses) any request for another host; the fixture asserts none happened.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_kaggle import FakeKaggle

FAKE_CREDENTIALS: dict[str, str] = {}
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(scope="session")
def fake_kaggle_server():
    server = FakeKaggle().start()
    yield server
    server.stop()


def _loopback_only(connect):
    def guarded(self, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to connect to {address!r}: only loopback is allowed")
        return connect(self, address, *args, **kwargs)

    return guarded


@pytest.fixture
def fake_kaggle(fake_kaggle_server, tmp_path, monkeypatch):
    server = fake_kaggle_server
    server.reset()
    FAKE_CREDENTIALS.update(username="alice", key=secrets.token_hex(16))
    home = tmp_path / "home"
    cfg = home / ".kaggle"
    cfg.mkdir(parents=True)
    (cfg / "kaggle.json").write_text(json.dumps(FAKE_CREDENTIALS))
    (cfg / "kaggle.json").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("KAGGLE_USERNAME", FAKE_CREDENTIALS["username"])
    monkeypatch.setenv("KAGGLE_KEY", FAKE_CREDENTIALS["key"])
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    for var in ("KAGGLE_API_TOKEN", "NO_PROXY", "no_proxy", "VERBOSE", "VERBOSE_OUTPUT", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    for var in _PROXY_VARS:
        monkeypatch.setenv(var, server.proxy)
    monkeypatch.setattr(socket.socket, "connect", _loopback_only(socket.socket.connect))
    yield server
    assert not server.escaped, f"requests left loopback: {server.escaped}"


def transcript_env(tmp: str, server: FakeKaggle, repo: Path, **extra: str) -> dict[str, str]:
    """The environment a transcript script gives its `kompete` subprocesses: a throwaway home with a fresh
    kaggle.json, the client aimed at the fake server, this repository first on the path."""
    home = Path(tmp) / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": secrets.token_hex(16)}))
    (home / ".kaggle" / "kaggle.json").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and "proxy" not in k.lower()}
    env.update(HOME=str(home), KAGGLE_CONFIG_DIR=str(home / ".kaggle"), KAGGLE_API_ENVIRONMENT="LOCALHOST",
               HTTP_PROXY=server.proxy, HTTPS_PROXY=server.proxy, PYTHONPATH=str(repo),
               KOMPETE_CACHE_DIR=str(Path(tmp) / "cache"), **extra)
    return env


class Transcript:
    """Runs `kompete` commands as subprocesses against the fake server and keeps what they printed, with the
    temporary folder shown as $TMP: the body of tests/kaggle_transcript.py and tests/campaign_transcript.py.

    `keep_server_state`: the server's scripted replies and kernels live on between commands (a campaign);
    otherwise each command starts from a reset server."""

    def __init__(self, tmp: str, server: FakeKaggle, env: dict[str, str], keep_server_state: bool = False):
        self.tmp, self.server, self.env, self.keep = tmp, server, env, keep_server_state
        self.lines: list[str] = []

    def run(self, *cmd: str, setup=None) -> None:
        if self.keep:
            self.server.calls.clear()
        else:
            self.server.reset()
        if setup:
            setup()
        proc = subprocess.run([sys.executable, "-m", "kompete", *cmd], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True)
        self.lines.append("$ kompete " + " ".join(c.replace(self.tmp, "$TMP") for c in cmd))
        for text in (proc.stdout, proc.stderr):
            self.lines.extend(line.replace(self.tmp, "$TMP") for line in text.rstrip().splitlines() if line.strip())
        calls = [m.split("/")[-1] for m in self.server.methods() if not m.endswith("IntrospectToken")]
        self.lines.append(f"[exit {proc.returncode}; API calls: {', '.join(calls)}]")
        self.lines.append("")

    def finish(self, out: Path | None) -> None:
        """Stop the server, check nothing left loopback, print the transcript (and write it as markdown)."""
        self.server.stop()
        assert not self.server.escaped, self.server.escaped
        text = "\n".join(self.lines)
        print(text)
        if out:
            out.write_text("```\n" + text + "\n```\n")
