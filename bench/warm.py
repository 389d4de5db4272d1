"""The warm dispatcher's benchmarks: ``hookrunner serve`` behind ``pam_hookrunner.so socket=``.

B4w joins B4's hyperfine run (``fixtures.pam_services(warm=Daemon.lines)``): the same login,
the same hooks, through the module and the daemon. B1w and B3w time one PAM call with
``bench/pamloop.c`` (one ``pam_start``, then the call N times in one process, each timed with
``CLOCK_MONOTONIC``): a process start per call (pamtester's, ~2 ms) would hide what is being
measured, a phase that costs about a millisecond. B1w: an empty phase through the daemon ÷
the same call with ``nosocket`` (the module execs the dispatcher). B3w: per hook at N=10,
script ÷ plugin, both through the daemon (B3's trees). RSS: the daemon's own VmRSS after
10 000 requests ÷ after 10.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "pam" / "pam_hookrunner.so"
WRAPPER = "libpam_wrapper.so"


class Daemon:
    """``serve`` on a socket of its own below /run (a socket below /tmp is never used)."""

    def __init__(self, python: str, work: Path, quick: bool) -> None:
        self.python, self.work, self.quick = python, work, quick
        self.dir = Path("/run") / f"hookrunner-bench-{secrets.token_hex(4)}"
        self.socket = self.dir / "dispatch.sock"
        self.pamloop = work / "pamloop"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        subprocess.run(["make", "-s", "-C", str(REPO / "pam")], check=True, capture_output=True)
        subprocess.run(["gcc", "-O2", "-o", str(self.pamloop), str(REPO / "bench" / "pamloop.c"),
                        "-lpam"], check=True, capture_output=True)
        self.dir.mkdir(mode=0o755)
        self.dir.chmod(0o755)
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", str(REPO / "hookrunner" / "__main__.py"), "serve", "--socket",
             str(self.socket)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: hookrunner serve did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def lines(self, group: str, tree: Path, socket: bool) -> str:
        """A pam_hookrunner.so line over ``tree``, through the daemon or by exec."""
        how = f"socket={self.socket}" if socket else "nosocket"
        return (f"{group} required {MODULE} python={self.python} "
                f"dispatcher={REPO / 'hookrunner' / '__main__.py'} root={tree} {how}")

    def loop(self, tree: Path, socket: bool, calls: int) -> list[float]:
        """``calls`` open_session calls over ``tree``: each one's wall time in seconds."""
        service = f"warm-{tree.name}-{'socket' if socket else 'exec'}"
        svc_dir = self.work / "pam.d"
        svc_dir.mkdir(mode=0o755, exist_ok=True)
        (svc_dir / service).write_text(f"{self.lines('session', tree, socket)}\n"
                                       "session required pam_permit.so\n")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_PRELOAD": WRAPPER, "PAM_WRAPPER": "1",
               "PAM_WRAPPER_SERVICE_DIR": str(svc_dir)}
        done = subprocess.run([str(self.pamloop), service, "alice", "open_session", str(calls)],
                              env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise SystemExit(f"bench: pamloop {service} failed: {done.stderr[-2000:]}")
        return [int(x) / 1e9 for x in done.stdout.split()]

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise SystemExit("bench: no VmRSS")

    def measure(self, work: Path) -> dict[str, object]:
        rounds, calls = (1, 30) if self.quick else (5, 100)
        empty = work / "empty"  # B1's tree
        trees = {f"{kind} N={n}": work / f"{kind}-{n}" for kind in ("plugin", "script") for n in (0, 10)}
        times: dict[str, list[float]] = {"empty, daemon": [], "empty, exec": []}
        times |= {label: [] for label in trees}
        for _ in range(rounds):  # interleaved, as hyperfine's rounds
            times["empty, daemon"] += self.loop(empty, True, calls)
            times["empty, exec"] += self.loop(empty, False, calls)
            for label, tree in trees.items():
                times[label] += self.loop(tree, True, calls if "plugin" in label else calls // 3)
        total = 400 if self.quick else 10000
        self.loop(empty, True, 10)
        rss_10 = self.rss_kib()
        done = 10
        while done < total:
            calls = min(1000, total - done)
            self.loop(empty, True, calls)
            done += calls
        rss_n = self.rss_kib()
        return {"times": times, "rss": (rss_10, rss_n, total)}


def median(values: list[float]) -> float:
    return statistics.median(values)
