"""Turn the measurements into ``results.md`` (tables, ratios, targets) and ``latency.png``."""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class Timed(Protocol):
    times: list[float]

    @property
    def median(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def machine(python: str) -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                          if ln.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "?"
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "interpreter": f"{python} ({_run([python, '-c', 'import sys; print(sys.version.split()[0])'])})",
        "interpreter build": _run([python, "-VV"]),
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "distribution": f"Debian {debian}",
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "memory": mem,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "hyperfine": _run(["hyperfine", "--version"]),
        "run-parts": _run(["run-parts", "--version"]),
        "syslog socket": "present" if os.path.exists("/dev/log") else "absent (records dropped cheaply)",
        "open files limit": f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]} (pam_exec closes each, per call)",
        "hookrunner": _run(["git", "-C", str(Path(__file__).resolve().parent.parent), "describe", "--always",
                            "--dirty=+uncommitted changes"]),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def cell(s: Timed) -> str:
    return f"{ms(s.median)} ({ms(s.min)}-{ms(s.max)})"


def slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope (seconds per hook) of median time against N."""
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


class Targets:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, name: str, value: float, limit: float, fmt: str, *, at_most: bool = True) -> None:
        ok = value <= limit if at_most else value >= limit
        self.rows.append((name, fmt.format(value), ("≤ " if at_most else "≥ ") + fmt.format(limit),
                          "met" if ok else "**missed**"))

    def floor(self, name: str, value: float, limit: float, fmt: str, *, at_most: bool = True) -> None:
        """An informational row: a floor (bench/floor.py) under a target's definition, no verdict."""
        self.rows.append((name, fmt.format(value), ("≤ " if at_most else "≥ ") + fmt.format(limit), "floor"))


def markdown(results: Mapping[str, Any], machine_info: Mapping[str, str], b2_n: Sequence[int],
             b3_n: Sequence[int], b6_n: Sequence[int]) -> str:
    b1, b2, b3, b4, b5, b6 = (results[k] for k in ("b1", "b2", "b3", "b4", "b5", "b6"))
    targets = Targets()
    out: list[str] = ["# hookrunner benchmark results", ""]
    out += ["Written by `make bench` (`bench/run.py`); wall times in ms, median (min-max) of all "
            "runs; hyperfine's raw JSON sits next to this file.", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine_info.items()] + [""]

    floor = b1["python -I -S -c pass"].median
    empty = b1["hookrunner run (empty)"].median
    targets.add("B1 empty run ÷ `python -I -S -c pass`", empty / floor, 1.5, "{:.2f}")
    targets.add("B1' (empty run - `python -I -m __hello__`) ÷ `python -I -S -c pass`",
                (empty - b1["python -I -m __hello__"].median) / floor, 0.5, "{:.2f}")

    hr2 = [(n, b2[f"hookrunner N={n}"].median) for n in b2_n]
    rp2 = [(n, b2[f"run-parts N={n}"].median) for n in b2_n]
    s_hr, s_rp = slope(hr2), slope(rp2)
    targets.add("B2 slope hookrunner ÷ slope run-parts", s_hr / s_rp, 1.15, "{:.2f}")

    n10 = 10 if 10 in b3_n else max(b3_n)
    per_plugin = (b3[f"plugin N={n10}"].median - b3["plugin N=0"].median) / n10
    per_script = (b3[f"script N={n10}"].median - b3["script N=0"].median) / n10
    targets.add(f"B3 script ÷ plugin, per hook at N={n10}", per_script / per_plugin, 20, "{:.1f}",
                at_most=False)
    per_floor = (b3[f"floor N={n10}"].median - b3["floor N=0"].median) / n10
    targets.floor(f"B3 floor: script ÷ pluggy floor, per hook at N={n10}", per_script / per_floor, 20,
                  "{:.1f}", at_most=False)

    b4_ratio = b4["pam_exec → hookrunner"].median / b4["pam_exec → run-parts"].median
    targets.add("B4 login via hookrunner ÷ via run-parts", b4_ratio, 2.0, "{:.2f}")
    targets.floor("B4 floor: import-light floor login ÷ run-parts",
                  b4["pam_exec → import-light floor"].median / b4["pam_exec → run-parts"].median, 2.0,
                  "{:.2f}")

    warm = results.get("warm")
    if warm is not None:
        wt = {label: statistics.median(v) for label, v in warm["times"].items()}
        targets.add("B4w login via pam_hookrunner.so + warm daemon ÷ via run-parts",
                    b4["pam_hookrunner → warm daemon"].median / b4["pam_exec → run-parts"].median,
                    0.5, "{:.2f}")
        targets.add("B1w empty phase through the daemon ÷ through exec (pam_hookrunner.so)",
                    wt["empty, daemon"] / wt["empty, exec"], 0.2, "{:.2f}")
        w_plugin = (wt["plugin N=10"] - wt["plugin N=0"]) / 10
        w_script = (wt["script N=10"] - wt["script N=0"]) / 10
        targets.add("B3w script ÷ plugin, per hook at N=10, through the daemon", w_script / w_plugin,
                    20, "{:.1f}", at_most=False)
        rss_10, rss_n, total = warm["rss"]
        targets.add(f"daemon RSS after {total} requests ÷ after 10", rss_n / rss_10, 1.05, "{:.3f}")

    bare = statistics.median(b5["python -I -S -c pass"])
    big = max(b2_n)
    targets.add("B5 peak RSS, empty run ÷ bare interpreter",
                statistics.median(b5["hookrunner run (empty)"]) / bare, 1.3, "{:.2f}")
    targets.add(f"B5 peak RSS, N={big} ÷ bare interpreter",
                statistics.median(b5[f"hookrunner run N={big}"]) / bare, 1.3, "{:.2f}")

    small, large = b6_n
    base6 = b6["list --json, 0 files"].median
    growth = (b6[f"list --json, {large} files"].median - base6) / (
        b6[f"list --json, {small} files"].median - base6)
    bound = large * math.log(large) / (small * math.log(small))
    targets.add(f"B6 growth {small}→{large} files (net of start-up)", growth, bound, "{:.1f}")

    out += ["## Targets", "", "| target | measured | limit | |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets.rows] + [""]
    out += ["Rows marked *floor* are not targets and have no verdict: they put `bench/floor.py` (not "
            "hookrunner; the cheapest conceivable Python program doing the same job, see B3 and B4) "
            "under the target's definition, in the same run. A floor beyond the limit means no "
            "Python dispatcher doing the same job can meet that target; a floor near it means the "
            "target leaves no room for anything but starting Python and the hooks (no safety "
            "walk, timeout, output capture or log record).", ""]

    out += ["## B1 dispatch floor", "", "`hookrunner run onsessionopen` over empty directories, "
            "invoked as the PAM lines do: `python -I -S …/hookrunner/__main__.py run`. "
            "`bench/floor.py` makes the same system calls importing only `os` and `site`: the floor a "
            "Python dispatcher could reach.", "",
            "| command | median (min-max) | ÷ `-I -S -c pass` |", "|---|---|---|"]
    out += [f"| `{label}` | {cell(s)} | {s.median / floor:.2f} |" for label, s in b1.items()] + [""]

    out += ["## B2 per-hook cost", "", "N trivial `#!/bin/sh` hooks (`exit 0`), the same directory.",
            "", "| N | hookrunner | run-parts | ratio |", "|---|---|---|---|"]
    for n in b2_n:
        h, r = b2[f"hookrunner N={n}"], b2[f"run-parts N={n}"]
        out.append(f"| {n} | {cell(h)} | {cell(r)} | {h.median / r.median:.2f} |")
    out += ["", f"Slope (least squares over N): hookrunner **{s_hr * 1000:.3f} ms/hook**, "
            f"run-parts **{s_rp * 1000:.3f} ms/hook**.", ""]

    out += ["## B3 plugin versus script", "",
            "Append `USER RHOST` to a file: a Python plugin file in hookrunner versus an executable "
            "`#!/usr/bin/python3 -IS` script under run-parts. The pluggy floor, `python -I -S "
            "bench/floor.py --plugins onsessionopen TREE`, is not hookrunner: it loads the same plugin "
            "files with pluggy (imported, as by hookrunner, only when there is a plugin) and calls "
            "the hook once, with nothing else: the floor of any dispatcher of pluggy plugins.", "",
            "| N | hookrunner, plugin | run-parts, script | ratio | pluggy floor | script ÷ floor |",
            "|---|---|---|---|---|---|"]
    for n in b3_n:
        p, s, f = b3[f"plugin N={n}"], b3[f"script N={n}"], b3[f"floor N={n}"]
        out.append(f"| {n} | {cell(p)} | {cell(s)} | {s.median / p.median:.2f} | {cell(f)} | "
                   f"{s.median / f.median:.2f} |")
    pl = [(n, b3[f"plugin N={n}"].median) for n in b3_n if n]
    sl = [(n, b3[f"script N={n}"].median) for n in b3_n if n]
    fl = [(n, b3[f"floor N={n}"].median) for n in b3_n if n]
    first = (f"; its N=1 - N=0 (pluggy's import and one plugin): "
             f"{(b3['floor N=1'].median - b3['floor N=0'].median) * 1000:.1f} ms" if 1 in b3_n else "")
    out += ["", f"Per hook at N={n10} (time - empty run) ÷ N: plugin {per_plugin * 1000:.3f} ms, "
            f"script {per_script * 1000:.3f} ms. Marginal slope over N ≥ 1: plugin "
            f"{slope(pl) * 1000:.3f} ms/hook, script {slope(sl) * 1000:.3f} ms/hook.",
            "", f"Pluggy floor: per hook at N={n10} (time - its empty run) ÷ N {per_floor * 1000:.3f} ms "
            f"(script ÷ floor {per_script / per_floor:.1f}; the target asks for ≥ 20), marginal slope "
            f"over N ≥ 1 {slope(fl) * 1000:.3f} ms/hook{first}.", ""]

    out += ["## B4 whole login", "", "pamtester under pam_wrapper: authenticate, acct_mgmt, "
            "open_session, close_session; pam_matrix checks the password; 3 trivial hooks per phase. "
            "`pam_exec → import-light floor` is not hookrunner: the hookrunner lines running "
            "`python -I -S bench/floor.py PHASE TREE`, which spawns and waits for the same hooks "
            "importing only `os` and `site`: the floor of any Python dispatcher under pam_exec.",
            "", "| variant | median (min-max) | ÷ run-parts |", "|---|---|---|"]
    rp4 = b4["pam_exec → run-parts"].median
    out += [f"| {label} | {cell(s)} | {s.median / rp4:.2f} |" for label, s in b4.items()] + [""]

    if warm is not None:
        out += ["## Warm dispatcher (B1w, B3w, B4w, daemon RSS)", "",
                "`hookrunner serve` behind `pam_hookrunner.so socket=` (bench/warm.py). B4w is "
                "the `pam_hookrunner → warm daemon` row of B4 above (same hyperfine run, same "
                "hooks). B1w and B3w time one `pam_open_session` call with `bench/pamloop.c` (one "
                "`pam_start`, then the call N times in one process under pam_wrapper), so that no "
                "process start per call hides a phase of about a millisecond; `exec` is the same "
                "module line with `nosocket`.", "",
                "| call | median (min-max), ms | runs |", "|---|---|---|"]
        for label, values in warm["times"].items():
            out.append(f"| {label} | {ms(statistics.median(values))} ({ms(min(values))}-"
                       f"{ms(max(values))}) | {len(values)} |")
        out += ["", f"Per hook at N=10 through the daemon: plugin {w_plugin * 1000:.3f} ms, script "
                f"{w_script * 1000:.3f} ms. Daemon VmRSS: {rss_10} KiB after 10 requests, {rss_n} KiB "
                f"after {total}.", ""]

    out += ["## B5 memory", "", "Peak RSS from `/usr/bin/time -v` (KiB), median (min-max) of the "
            "repetitions.", "", "| process | peak RSS | ÷ bare `-I -S` |", "|---|---|---|"]
    for label, values in b5.items():
        med = statistics.median(values)
        out.append(f"| `{label}` | {med:.0f} ({min(values)}-{max(values)}) | {med / bare:.2f} |")
    out += [""]

    out += ["## B6 discovery scale", "", "`hookrunner list onsessionopen --json` (every file "
            "safety-checked).", "", "| files | median (min-max) |", "|---|---|"]
    out += [f"| {label.split(', ')[1]} | {cell(s)} |" for label, s in b6.items()]
    out += ["", f"Growth {small}→{large} files, net of the empty run: {growth:.1f}x "
            f"(n log n would allow {bound:.1f}x, linear is {large / small:.0f}x).", ""]
    out += ["![latency against number of hooks](latency.png)", ""]
    return "\n".join(out)


def plot(results: Mapping[str, Any], b2_n: Sequence[int], b3_n: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    series = (("b2", "hookrunner N={}", b2_n, "hookrunner, sh hooks", "o-"),
              ("b2", "run-parts N={}", b2_n, "run-parts, sh hooks", "s-"),
              ("b3", "plugin N={}", b3_n, "hookrunner, Python plugins", "^--"),
              ("b3", "script N={}", b3_n, "run-parts, Python scripts", "v--"))
    for key, fmt, ns, label, style in series:
        xs = [n for n in ns if n]
        stats = [results[key][fmt.format(n)] for n in xs]
        med = [s.median * 1000 for s in stats]
        err = [[m - s.min * 1000 for m, s in zip(med, stats, strict=True)],
               [s.max * 1000 - m for m, s in zip(med, stats, strict=True)]]
        ax.errorbar(xs, med, yerr=err, fmt=style, capsize=3, label=label)
    floor = results["b1"]["python -I -S -c pass"].median * 1000
    ax.axhline(floor, color="grey", linestyle=":", label="python -I -S -c pass")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of hooks")
    ax.set_ylabel("wall time per run (ms), median, min-max bars")
    ax.set_title("One PAM phase: latency against number of hooks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
