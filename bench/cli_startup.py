"""Start-up cost of the commands that only read YAML: `kompete competitions`, `kompete config NAME` and
`kompete --help` against `kaggle --version`, as wall time and peak memory (median of --repeats runs).

Goal (issue 12): under 0.5 s and 150 MB on the 2-core development machines.

    python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(cmd: list[str], repeats: int) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MB) of `cmd` run as a child process."""
    walls, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.execvp(cmd[0], cmd)
        _, status, usage = os.wait4(pid, 0)
        walls.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss / 1024)  # kB on Linux
    return statistics.median(walls), statistics.median(peaks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    py = sys.executable
    bindir = Path(py).parent
    kaggle = [str(bindir / "kaggle"), "--version"]
    rows = [("kaggle --version", kaggle),
            ("kompete --help", [py, "-m", "kompete", "--help"]),
            ("kompete competitions", [py, "-m", "kompete", "competitions"]),
            ("kompete config sample-dogs", [py, "-m", "kompete", "config", "sample-dogs"]),
            ("python -c 'import torch'", [py, "-c", "import torch"])]
    os.chdir(REPO)
    base = None
    print(f"{'command':30} {'wall s':>8} {'peak MB':>8} {'vs kaggle':>10}")
    for name, cmd in rows:
        wall, peak = measure(cmd, a.repeats)
        base = base or wall
        print(f"{name:30} {wall:8.3f} {peak:8.0f} {wall / base:9.2f}x")


if __name__ == "__main__":
    main()
