"""Start-up cost of the commands that only read YAML: `kompete competitions`, `kompete config NAME` and
`kompete --help` against `kaggle --version`, as wall time (interleaved rounds, ratio to kaggle) and peak memory.

Goal (issue 12): under 0.5 s and 150 MB on the 2-core development machines.

    python bench/cli_startup.py [--rounds 5]
    python bench/cli_startup.py --smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import Harness, bench_arguments  # noqa: E402


def run_child(cmd: list[str], peaks: list[float]) -> None:
    """Run `cmd` silenced as a child process; its peak RSS (MB) goes into `peaks`."""
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {os.waitstatus_to_exitcode(status)})")
    peaks.append(usage.ru_maxrss / 1024)  # kB on Linux


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench_arguments(ap, rounds=5)
    args = ap.parse_args(argv)
    py = sys.executable
    kaggle = shutil.which("kaggle", path=str(Path(py).parent)) or shutil.which("kaggle")
    commands = {"kompete --help": [py, "-m", "kompete", "--help"],
                "kompete competitions": [py, "-m", "kompete", "competitions"],
                "kompete config sample-dogs": [py, "-m", "kompete", "config", "sample-dogs"],
                "python -c 'import torch'": [py, "-c", "import torch"]}
    if kaggle:
        commands = {"kaggle --version": [kaggle, "--version"], **commands}
    if args.smoke:
        args.rounds = 1
        commands = {k: v for k, v in commands.items() if k in ("kaggle --version", "kompete --help")}
    os.chdir(REPO)
    os.environ["PYTHONPATH"] = str(REPO)  # the children import this checkout's kompete
    h = Harness("cli_startup", args)
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    h.compare("start-up, wall seconds", {name: (lambda c=cmd, p=peaks[name]: run_child(c, p))
                                         for name, cmd in commands.items()}, unit_name="runs")
    for name, values in peaks.items():
        h.note(f"{name}: peak MB (median)", round(sorted(values)[len(values) // 2]))
    h.finish()


if __name__ == "__main__":
    main()
