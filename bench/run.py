#!/usr/bin/env python3
"""hookrunner's benchmark suite: B1-B6 and the warm dispatcher's B1w-B4w side by side in one run
(``make bench``).

Public tools only: hyperfine (wall time, JSON export), GNU ``/usr/bin/time -v`` (peak RSS),
``time.perf_counter`` (set-up). Writes ``results.md``, ``latency.png`` and hyperfine's raw
JSON (``b*.json``) into ``bench/results/`` (or ``--out DIR``).

    bench/run.py            the full suite (a few minutes)
    bench/run.py --quick    a smoke variant (fewer runs, smaller N; well under a minute)

Needs root: hookrunner refuses hooks that are not root-owned, and the trees are built here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import fixtures
import report
import warm

REPO = Path(__file__).resolve().parent.parent
PAM_WRAPPER = "libpam_wrapper.so"
HOOK_ENV = {"PAM_SERVICE": "bench", "PAM_USER": "alice", "PAM_TTY": "/dev/pts/9",  # pam_exec's order
            "PAM_RHOST": "203.0.113.9", "PAM_TYPE": "open_session"}


@dataclass
class Stats:
    """Wall times (seconds) of one command, pooled over rounds."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


@dataclass
class Plan:
    quick: bool
    b1_rounds: int
    b1_runs: int
    b2_n: tuple[int, ...]
    b3_n: tuple[int, ...]
    b4_runs: int
    b5_reps: int
    b6_n: tuple[int, int]

    def runs(self, n: int) -> int:
        """Fewer runs for the long commands: each group stays within a few seconds."""
        if self.quick:
            return 3 if n >= 100 else 8
        return 7 if n >= 1000 else 15 if n >= 100 else 30


FULL = Plan(False, 5, 30, (0, 1, 10, 100, 1000), (0, 1, 10, 50), 30, 5, (1000, 10000))
QUICK = Plan(True, 1, 10, (0, 1, 10, 100), (0, 1, 10), 5, 2, (100, 1000))


class Bench:
    def __init__(self, plan: Plan, out: Path, python: str, work: Path) -> None:
        self.plan, self.out, self.python, self.work = plan, out, python, work
        self.dispatcher = [python, "-I", "-S", str(REPO / "hookrunner" / "__main__.py")]
        self.floor = [python, "-I", "-S", str(REPO / "bench" / "floor.py")]  # not hookrunner
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "PYTHON", "PAM_"))}
        self.env.update(HOOK_ENV)
        self.results: dict[str, object] = {}
        self.warm: warm.Daemon

    # -- tools ---------------------------------------------------------------------------

    def hyperfine(self, name: str, commands: dict[str, list[str] | str], *, runs: int,
                  warmup: int = 2, rounds: int = 1, shell: bool = False) -> dict[str, Stats]:
        """Run ``commands`` with hyperfine (``rounds`` times, interleaved); pooled times."""
        stats = {label: Stats() for label in commands}
        for r in range(rounds):
            export = self.out / f"{name}{'' if rounds == 1 else f'-{r + 1}'}.json"
            argv = ["hyperfine", "--style", "none", "--export-json", str(export),
                    "--runs", str(runs), "--warmup", str(warmup)]
            if not shell:
                argv.append("-N")
            for label, cmd in commands.items():
                argv += ["-n", label, cmd if isinstance(cmd, str) else shlex.join(cmd)]
            done = subprocess.run(argv, env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit(f"bench: hyperfine {name} failed:\n{done.stderr}")
            for result in json.loads(export.read_text())["results"]:
                stats[result["command"]].times += result["times"]
        return stats

    def peak_rss(self, argv: list[str], reps: int) -> list[int]:
        """Peak RSS in KiB (GNU time's "Maximum resident set size"), one per repetition."""
        values = []
        for _ in range(reps):
            done = subprocess.run(["/usr/bin/time", "-v", *argv], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit(f"bench: {shlex.join(argv)} failed:\n{done.stderr}")
            line = next(ln for ln in done.stderr.splitlines() if "Maximum resident set size" in ln)
            values.append(int(line.rsplit(":", 1)[1]))
        return values

    def hookrunner(self, *args: str) -> list[str]:
        return [*self.dispatcher, *args]

    def check_list(self, tree: Path, phase: str, want: int) -> None:
        """Before timing: hookrunner sees exactly ``want`` runnable hooks (nothing refused)."""
        done = subprocess.run(self.hookrunner("list", phase, "--json", "--root", str(tree)),
                              env=self.env, capture_output=True, text=True, check=True)
        actions = [row["action"] for row in json.loads(done.stdout)]
        if actions.count("run") != want or len(actions) != want:
            raise SystemExit(f"bench: {tree}: expected {want} runnable hooks, got {actions[:5]}...")

    # -- the benchmarks --------------------------------------------------------------------

    def b1(self) -> None:
        empty = fixtures.new_tree(self.work, "empty")
        fixtures.phase_dir(empty)
        py = self.python
        commands: dict[str, list[str] | str] = {
            "python -I -S -c pass": [py, "-I", "-S", "-c", "pass"],
            "python -I -c pass": [py, "-I", "-c", "pass"],
            "python -I -m __hello__": [py, "-I", "-m", "__hello__"],
            "hookrunner run (empty)": self.hookrunner("run", "onsessionopen", "--root", str(empty)),
            "import-light floor (bench/floor.py)": [py, "-I", "-S", str(REPO / "bench" / "floor.py"),
                                                    "onsessionopen", str(empty)],
        }
        config_tree = fixtures.new_tree(self.work, "config")
        fixtures.phase_dir(config_tree)
        (config_tree / "etc/security/hookrunner.toml").write_text(
            'timeout = 5\npass_env = ["LANG"]\n\n[hook."50-x"]\noptional = true\n')
        commands["hookrunner run (empty, with hookrunner.toml)"] = self.hookrunner(
            "run", "onsessionopen", "--root", str(config_tree))
        self.results["b1"] = self.hyperfine("b1", commands, runs=self.plan.b1_runs, warmup=5,
                                            rounds=self.plan.b1_rounds)

    def b2(self) -> None:
        stats: dict[str, Stats] = {}
        self.b2_trees: dict[int, Path] = {}
        for n in self.plan.b2_n:
            tree = fixtures.new_tree(self.work, f"sh-{n}")
            d = fixtures.phase_dir(tree)
            fixtures.sh_hooks(d, n)
            self.b2_trees[n] = tree
            self.check_list(tree, "onsessionopen", n)
            got = self.hyperfine(f"b2-{n}", {
                f"hookrunner N={n}": self.hookrunner("run", "onsessionopen", "--root", str(tree)),
                f"run-parts N={n}": ["/usr/bin/run-parts", str(d)],
            }, runs=self.plan.runs(n), warmup=1)
            stats.update(got)
        self.results["b2"] = stats

    def b3(self) -> None:
        stats: dict[str, Stats] = {}
        for n in self.plan.b3_n:
            out = self.work / f"b3-{n}.out"
            ptree = fixtures.new_tree(self.work, f"plugin-{n}")
            fixtures.plugin_hooks(fixtures.phase_dir(ptree), n, out)
            stree = fixtures.new_tree(self.work, f"script-{n}")
            sdir = fixtures.phase_dir(stree)
            fixtures.script_hooks(sdir, n, out, self.python)
            self.check_list(ptree, "onsessionopen", n)
            plugin = self.hookrunner("run", "onsessionopen", "--root", str(ptree))
            script = ["/usr/bin/run-parts", str(sdir)]
            floor = [*self.floor, "--plugins", "onsessionopen", str(ptree)]  # the same plugin files
            for k, argv in enumerate((plugin, script, floor), 1):  # all three really do the work
                subprocess.run(argv, env=self.env, check=True)
                lines = out.read_text().splitlines() if out.exists() else []
                if lines != ["alice 203.0.113.9"] * (k * n):
                    raise SystemExit(f"bench: B3 N={n}: {shlex.join(argv)}: unexpected output {lines[:3]}"
                                     f" ({len(lines)} lines, expected {k * n})")
            stats.update(self.hyperfine(f"b3-{n}", {
                f"plugin N={n}": plugin, f"script N={n}": script, f"floor N={n}": floor,
            }, runs=self.plan.runs(n * 10), warmup=1))
        self.results["b3"] = stats

    def b4(self) -> None:
        tree = fixtures.new_tree(self.work, "login")
        services = fixtures.pam_services(self.work, tree, self.dispatcher, 3, self.floor,
                                         warm=self.warm.lines)
        for _, phase in fixtures.B4_PHASES:
            self.check_list(tree, phase, 3)
        env = (f"LD_PRELOAD={PAM_WRAPPER} PAM_WRAPPER=1 "
               f"PAM_WRAPPER_SERVICE_DIR={shlex.quote(str(self.work / 'pam.d'))}")
        commands: dict[str, list[str] | str] = {}
        for variant, service in services.items():
            cmd = (f"echo secret | {env} pamtester {service} alice "
                   "authenticate acct_mgmt open_session close_session")
            done = subprocess.run(["sh", "-c", cmd], env=self.env, capture_output=True, text=True)
            if done.returncode != 0 or "session has successfully been closed" not in done.stdout:
                raise SystemExit(f"bench: B4 {variant}: pamtester failed:\n{done.stdout}{done.stderr}")
            commands[variant] = cmd
        self.results["b4"] = self.hyperfine("b4", commands, runs=self.plan.b4_runs, warmup=2,
                                            shell=True)

    def b5(self) -> None:
        py, reps = self.python, self.plan.b5_reps
        big = max(self.plan.b2_n)
        self.results["b5"] = {
            "python -I -S -c pass": self.peak_rss([py, "-I", "-S", "-c", "pass"], reps),
            "python -I -c pass": self.peak_rss([py, "-I", "-c", "pass"], reps),
            "hookrunner run (empty)": self.peak_rss(
                self.hookrunner("run", "onsessionopen", "--root", str(self.b2_trees[0])), reps),
            f"hookrunner run N={big}": self.peak_rss(
                self.hookrunner("run", "onsessionopen", "--root", str(self.b2_trees[big])), reps),
            f"run-parts N={big}": self.peak_rss(
                ["/usr/bin/run-parts", str(fixtures.phase_dir(self.b2_trees[big]))], reps),
        }

    def b6(self) -> None:
        commands: dict[str, list[str] | str] = {}
        for n in (0, *self.plan.b6_n):
            tree = self.b2_trees.get(n)
            if tree is None:
                tree = fixtures.new_tree(self.work, f"list-{n}")
                fixtures.sh_hooks(fixtures.phase_dir(tree), n)
            self.check_list(tree, "onsessionopen", n)
            commands[f"list --json, {n} files"] = self.hookrunner(
                "list", "onsessionopen", "--json", "--root", str(tree))
        runs = 3 if self.plan.quick else 10
        self.results["b6"] = self.hyperfine("b6", commands, runs=runs, warmup=1)


def ensure_tools() -> None:
    missing = [t for t in ("hyperfine", "run-parts", "pamtester") if shutil.which(t) is None]
    if not os.path.exists("/usr/bin/time"):
        missing.append("/usr/bin/time (Debian package time)")
    if missing:
        raise SystemExit(f"bench: missing {', '.join(missing)}: run scripts/deps as root")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("bench: no matplotlib (the 'bench' extra): run scripts/deps, and me with "
                         ".venv/bin/python (make bench)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke variant: few runs, small N")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results",
                        help="where results.md, latency.png and the raw JSON go")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="interpreter of the dispatcher (default /usr/bin/python3)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (hookrunner only runs root-owned hooks)", file=sys.stderr)
        return 2
    ensure_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="hookrunner-bench-"))
    os.chmod(work, 0o755)  # the pam_wrapper services and trees live here
    try:
        bench = Bench(plan, args.out, args.python, work)
        machine = report.machine(args.python)
        with warm.Daemon(args.python, work, plan.quick) as daemon:
            bench.warm = daemon
            for step in ("b1", "b2", "b3", "b4", "b5", "b6", "warm"):
                t = time.perf_counter()
                if step == "warm":
                    bench.results["warm"] = daemon.measure(work)
                else:
                    getattr(bench, step)()
                print(f"bench: {step.upper()} done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine["duration"] = f"{time.perf_counter() - started:.0f} s"
    machine["mode"] = "quick (--quick)" if plan.quick else "full"
    markdown = report.markdown(bench.results, machine, plan.b2_n, plan.b3_n, plan.b6_n)
    (args.out / "results.md").write_text(markdown)
    report.plot(bench.results, plan.b2_n, plan.b3_n, args.out / "latency.png")
    print(markdown)
    print(f"bench: wrote {args.out / 'results.md'} and {args.out / 'latency.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
