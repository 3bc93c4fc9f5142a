"""CLI start-up of two revisions side by side, each installed as a user installs it (not editable).

For each git revision given, ``git archive`` it into a temporary directory and make a venv there with the core
and every plugin installed non-editable (``pip install ./ ./plugins/*``). Then run, interleaved, ``python -c
pass`` (the first venv's interpreter), and ``omha status`` (against a shared-directory configuration, no daemon)
and ``omha plugins`` from each venv, and print the median wall time and the median CPU time (user + system of
the child, less disturbed by other processes on a shared machine), each as a multiple of ``python -c pass``.

Target (issue 19): ``omha status`` and ``omha plugins`` at most 3x ``python -c pass``.

``--floors`` adds, in the same interleaving, the imports that no version of ``omha status`` can skip, from the
same interpreter: ``re`` (pip's console-script wrapper imports it), ``argparse``, ``json`` and ``tomllib``; and
those with ``voluptuous``, which validates omha.toml.

Usage: ``python bench/bench_cli_ab.py [--runs 30] [--keep DIR [--reuse]] [--floors] BEFORE_REV AFTER_REV``
(e.g. ``python bench/bench_cli_ab.py main HEAD``).
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def install(rev: str, into: Path) -> Path:
    """A venv under ``into`` with ``rev``'s core and plugins installed non-editable; returns its bin directory."""
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(into / "venv")], check=True)
    pip = into / "venv" / "bin" / "pip"
    plugins = sorted(glob.glob(str(src / "plugins" / "*")))
    subprocess.run([str(pip), "install", "-q", str(src), *plugins], check=True)
    return into / "venv" / "bin"


def run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall * 1000, cpu * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keep", help="build the venvs here and keep them (default: a temporary directory)")
    ap.add_argument("--floors", action="store_true", help="also time the imports omha status cannot skip")
    ap.add_argument("--reuse", action="store_true", help="with --keep: use the venvs an earlier --keep run built there")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="omha-cli-ab-"))
    try:
        if args.reuse:
            bins = {side: base / side / "venv" / "bin" for side in ("before", "after")}
        else:
            bins = {"before": install(args.before, base / "before"), "after": install(args.after, base / "after")}
        cfg = base / "cfg"
        (cfg / "shared").mkdir(parents=True, exist_ok=True)
        (cfg / "omha.toml").write_text(f'node = "n1"\n[sharedfs]\npath = "{cfg / "shared"}"\n')
        cmds = {"python -c pass": [str(bins["before"] / "python"), "-c", "pass"]}
        for what in ("status", "plugins"):
            for side, b in bins.items():
                extra = ["-c", "omha.toml", "status"] if what == "status" else ["plugins"]
                cmds[f"omha {what}, {side}"] = [str(b / "omha"), *extra]
        if args.floors:
            stdlib = "import re, argparse, json, tomllib"
            cmds[f"python -c '{stdlib}'"] = [str(bins["before"] / "python"), "-c", stdlib]
            cmds[f"python -c '{stdlib}, voluptuous'"] = [str(bins["before"] / "python"), "-c", f"{stdlib}, voluptuous"]
        for cmd in cmds.values():  # warm the page cache (and fail early)
            run(cmd, cfg)
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                samples[name].append(run(cmd, cfg))
        wall0 = statistics.median(w for w, _ in samples["python -c pass"])
        cpu0 = statistics.median(c for _, c in samples["python -c pass"])
        print(f"{args.runs} interleaved runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print("| command | wall median | x pass | CPU median | x pass |")
        print("| --- | --- | --- | --- | --- |")
        for name, values in samples.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            print(f"| `{name}` | {wall:.1f} ms | {wall / wall0:.1f} | {cpu:.1f} ms | {cpu / cpu0:.1f} |")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
