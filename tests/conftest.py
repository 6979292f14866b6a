"""Shared fixtures: every test runs with its own cache and never touches the user's home."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """A cache shared by the whole session (sample data is made once), away from ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "kompete-cache"
    monkeypatch.setenv("KOMPETE_CACHE_DIR", str(cache))
    monkeypatch.delenv("KOMPETE_KAGGLE_ROOT", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    return cache


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a 2-core box: one intra-op thread avoids oversubscription (modules opt in)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_kompete(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600):
    """Run the real CLI in a subprocess, as a user would."""
    import subprocess

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "kompete", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=timeout)


from tests.kaggle_fixtures import fake_kaggle, fake_kaggle_server  # noqa: E402,F401  (kernel and ledger tests)


@pytest.fixture(autouse=True)
def isolated_ledger(tmp_path, monkeypatch):
    """Every test records into its own ledger database, never ~/.kompete/kompete.db."""
    db = tmp_path / "ledger.db"
    monkeypatch.setenv("KOMPETE_DB", str(db))
    return db
