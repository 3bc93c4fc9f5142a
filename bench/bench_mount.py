"""Benchmark of the ``@mount`` agent: acquire and release of ext4 on a loop device, idle and busy.

Runs as root. The script re-executes itself under ``unshare --mount --propagation private`` so that nothing it
mounts is visible on the host, makes a 64 MiB ext4 image in a temp dir, attaches it to a loop device, and
always detaches it at the end. Scenarios, each repeated ``--reps`` times (median, min, max in milliseconds):

- acquire / release in-process: the agent's own work (resolve, mountinfo, mount(8)/umount(8), verify).
- acquire with ``fsck=yes`` (``fsck -a`` of a clean ext4 first).
- acquire / release through ``python -m omha_core.agent`` as the local init runs them (adds starting Python
  and loading the plugins).
- release with 10 busy processes (5 with their cwd on the mount, 5 holding a file open) that exit on SIGTERM.
- release with 10 busy processes that ignore SIGTERM, ``kill_grace=1``: bounded by the grace period.
- one scan of /proc for the users of the mount (part of every busy release round).

Usage: ``sudo .venv/bin/python bench/bench_mount.py [--reps 15]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "OMHA_BENCH_MOUNT_NS"


def timed(action: Callable[[], object]) -> float:
    """Milliseconds ``action`` took."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<58} median {statistics.median(samples):8.1f} ms   "
        f"min {min(samples):8.1f}   max {max(samples):8.1f}   (n={len(samples)})",
        flush=True,
    )


def busy_processes(mnt: str, ignore_term: bool) -> list[subprocess.Popen[bytes]]:
    """Ten processes keeping ``mnt`` busy, started and confirmed holding it."""
    trap = "trap '' TERM; " if ignore_term else ""
    procs = []
    for i in range(10):
        hold = f"cd {mnt} && exec sleep 600" if i % 2 == 0 else f"exec 3<{mnt}/file; exec sleep 600"
        procs.append(subprocess.Popen(["sh", "-c", trap + hold]))
    for proc in procs:
        deadline = time.monotonic() + 10
        while True:
            try:
                links = [os.readlink(f"/proc/{proc.pid}/cwd")]
                if os.path.lexists(f"/proc/{proc.pid}/fd/3"):
                    links.append(os.readlink(f"/proc/{proc.pid}/fd/3"))
                with open(f"/proc/{proc.pid}/comm") as fh:
                    execed = fh.read().strip() == "sleep"
            except OSError:
                links, execed = [], False
            if execed and any(link.startswith(mnt) for link in links):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"busy process {proc.pid} never reached {mnt}")
            time.sleep(0.01)
    return procs


def run(reps: int) -> None:
    from omha_resource_mount.agent import MountAgent
    from omha_resource_mount.mountinfo import read_mounts, top_mount_at
    from omha_resource_mount.users import close_all, find_users

    logging.getLogger("omha.mount").addHandler(logging.NullHandler())  # the kills are expected here
    logging.getLogger("omha.mount").propagate = False

    with tempfile.TemporaryDirectory(prefix="omha-bench-mount-") as tmp:
        image = os.path.join(tmp, "disk.img")
        with open(image, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
        device = subprocess.run(
            ["losetup", "--find", "--show", image], capture_output=True, text=True, check=True
        ).stdout.strip()
        mnt = os.path.join(tmp, "mnt")
        try:
            spec = f"{device} {mnt} type=ext4 mkdir=yes"
            agent = MountAgent.from_command(spec)
            acquire, release = [], []
            for _ in range(reps):
                acquire.append(timed(MountAgent.from_command(spec).acquire))
                release.append(timed(MountAgent.from_command(spec).release))
            report("acquire, in-process", acquire)
            report("release, in-process", release)

            fsck = []
            for _ in range(reps):
                fsck.append(timed(MountAgent.from_command(spec + " fsck=yes").acquire))
                agent.release()
            report("acquire with fsck=yes, in-process", fsck)

            cli = [sys.executable, "-m", "omha_core.agent", "mount"]
            cli_acquire, cli_release = [], []
            for _ in range(max(3, reps // 3)):
                cli_acquire.append(timed(lambda: subprocess.run([*cli, "acquire", spec], check=True)))
                cli_release.append(timed(lambda: subprocess.run([*cli, "release", spec], check=True)))
            report("acquire, python -m omha_core.agent", cli_acquire)
            report("release, python -m omha_core.agent", cli_release)

            for ignore_term, grace, label in ((False, 5, "exit on SIGTERM"), (True, 1, "ignore SIGTERM, grace 1 s")):
                samples = []
                busy_spec = f"{spec} kill_grace={grace}"
                for _ in range(max(3, reps // 2)):
                    agent.acquire()
                    with open(os.path.join(mnt, "file"), "w") as fh:
                        fh.write("x")
                    procs = busy_processes(mnt, ignore_term)
                    try:
                        samples.append(timed(MountAgent.from_command(busy_spec).release))
                    finally:
                        for proc in procs:
                            proc.kill()
                            proc.wait()
                report(f"release with 10 busy processes ({label})", samples)

            agent.acquire()
            entry = top_mount_at(mnt, read_mounts())
            assert entry is not None
            scans = []
            for _ in range(reps):
                start = time.perf_counter()
                users, _spared = find_users(entry.mount_id, (entry.major, entry.minor))
                scans.append((time.perf_counter() - start) * 1000)
                close_all(users)
            processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
            report(f"one /proc scan for users ({processes} processes)", scans)
            agent.release()
        finally:
            subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
            subprocess.run(["losetup", "-d", device], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_mount: needs root (loop devices, mounts)", file=sys.stderr)
        return 2
    if os.environ.get(MARK) != "1":
        env = {**os.environ, MARK: "1"}
        argv = ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv]
        return subprocess.run(argv, env=env, check=False).returncode
    run(args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
