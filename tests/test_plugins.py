"""Python plugins through the real dispatcher (``python -I -S hookrunner/__main__.py``):
ordering among executables across layers, masking, isolation of failures, timeouts, the
context a plugin sees, the cost of not having plugins, and the docs of every hookspec.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from hooktree import MAIN, PYTHON, REPO, HookTree, run_hookrunner

import hookrunner.hookspecs
from hookrunner.entrypoints import CACHE

SESSION = {"PAM_USER": "alice", "PAM_SERVICE": "sshd", "PAM_RHOST": "203.0.113.9"}


def plugin(tree: HookTree, phase: str, name: str, body: str = "pass") -> str:
    """A plugin file that appends its name to OUT/order, then runs ``body``."""
    return (f"import hookrunner\n\n@hookrunner.hookimpl\ndef {phase}(ctx):\n"
            f"    with open({str(tree.out / 'order')!r}, 'a') as f:\n"
            f"        f.write({name!r} + '\\n')\n"
            + "".join(f"    {line}\n" for line in body.splitlines()))


def log(tree: HookTree) -> str:
    path = tree.root / "log"
    return path.read_text() if path.exists() else ""


def config(tree: HookTree, extra: str = "") -> None:
    tree.config(f'log_file = "{tree.root}/log"\n{extra}')


def test_onsessionopen_interleaves_scripts_and_plugins_across_layers(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    t.hook("onsessionopen", "10-a", t.order_script("10-a"))
    t.hook("onsessionopen", "20-b.py", plugin(t, "onsessionopen", "20-b"), 0o644, "usr/lib/hookrunner")
    t.hook("onsessionopen", "30-c", t.order_script("30-c"), layer="run/hookrunner")
    t.hook("onsessionopen", "40-d.py", plugin(t, "onsessionopen", "40-d"), 0o644,
           "usr/local/lib/hookrunner")
    # masked by a symlink to /dev/null in /etc/security, and by an empty file
    t.hook("onsessionopen", "50-masked.py", plugin(t, "onsessionopen", "50-masked"), 0o644,
           "usr/lib/hookrunner")
    (t.dir("onsessionopen") / "50-masked").symlink_to("/dev/null")
    t.hook("onsessionopen", "55-empty.py", plugin(t, "onsessionopen", "55-empty"), 0o644,
           "usr/lib/hookrunner")
    t.hook("onsessionopen", "55-empty.py", "", 0o644)
    # the admin's plugin replaces the packaged executable of the same name
    t.hook("onsessionopen", "60-over", t.order_script("60-packaged"), layer="usr/lib/hookrunner")
    t.hook("onsessionopen", "60-over.py", plugin(t, "onsessionopen", "60-admin"), 0o644)
    t.hook("onsessionopen", "70-e", t.order_script("70-e"), layer="usr/lib/hookrunner")

    result = t.run("run", "onsessionopen", env=SESSION)
    assert result.returncode == 0, result.stderr
    assert t.order() == ["10-a", "20-b", "30-c", "40-d", "60-admin", "70-e"]
    assert "onsessionopen.d/20-b returned" in log(t)

    rows = json.loads(t.run("list", "onsessionopen", "--json").stdout)
    got = [(r["name"], r["kind"], r["action"]) for r in rows]
    assert got == [
        ("10-a", "exec", "run"), ("20-b", "python", "run"), ("30-c", "exec", "run"),
        ("40-d", "python", "run"), ("50-masked", "exec", "mask"), ("50-masked", "python", "skip"),
        ("55-empty", "python", "mask"), ("55-empty", "python", "skip"),
        ("60-over", "exec", "skip"), ("60-over", "python", "run"), ("70-e", "exec", "run"),
    ]


# Each failing plugin sits between 10-first and 90-last in a session phase: the failure is
# its own, the log names it with the documented message, and 90-last still runs.
FAILURES = {
    "raises": ("def helper():\n    raise ValueError('boom')\n" + "@hookrunner.hookimpl\n"
               "def onsessionopen(ctx):\n    helper()\n",
               r"onsessionopen\.d/50-bad raised ValueError: boom \(\S+/50-bad\.py:3\).*outcome=error"),
    "returns-false": ("@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    return False\n",
                      r"onsessionopen\.d/50-bad returned False .*outcome=fail"),
    "deny": ("@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    raise hookrunner.Deny('not now')\n",
             r"onsessionopen\.d/50-bad denied: not now .*outcome=deny"),
    "syntax-error": ("@hookrunner.hookimpl\ndef onsessionopen(ctx:\n    pass\n",
                     r"onsessionopen\.d/50-bad failed to load: SyntaxError: .*\(\S+/50-bad\.py:3\)"
                     r".*outcome=error"),
    "import-error": ("import no_such_module_for_hookrunner\n",
                     r"onsessionopen\.d/50-bad failed to load: ModuleNotFoundError: No module named "
                     r"'no_such_module_for_hookrunner' \(\S+/50-bad\.py:2\).*outcome=error"),
    "misspelled-hook": ("@hookrunner.hookimpl\ndef onsesionopen(ctx):\n    pass\n",
                        r"onsessionopen\.d/50-bad failed to load: unknown hook 'onsesionopen' \(did you "
                        r"mean 'onsessionopen'\?\) at \S+/50-bad\.py:2 .*outcome=error"),
    "wrong-argument": ("@hookrunner.hookimpl\ndef onsessionopen(context):\n    pass\n",
                       r"onsessionopen\.d/50-bad failed to load: Plugin '50-bad' for hook 'onsessionopen'; "
                       r"hookimpl definition: onsessionopen\(context\);.* at \S+/50-bad\.py:2 .*outcome=error"),
    "no-hookimpl": ("def onsessionopen(ctx):\n    pass\n",
                    r"onsessionopen\.d/50-bad defines no @hookimpl onsessionopen\(ctx\).*outcome=error"),
    "infinite-loop": ("@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    while True:\n        pass\n",
                      r"onsessionopen\.d/50-bad timed out after 0\.5 s .*outcome=timeout"),
    "sleeps-forever": ("import time\n@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    time.sleep(3600)\n",
                       r"onsessionopen\.d/50-bad timed out after 0\.5 s .*outcome=timeout"),
    "exits": ("import sys\n@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    sys.exit(0)\n",
              r"onsessionopen\.d/50-bad raised SystemExit: 0 .*outcome=error"),
}


@pytest.mark.parametrize("kind", FAILURES)
def test_onsessionopen_failing_plugin_is_isolated(hooktree: HookTree, kind: str) -> None:
    t = hooktree
    source, expected = FAILURES[kind]
    config(t, '[hook."50-bad"]\ntimeout = 0.5\n')
    t.hook("onsessionopen", "10-first", t.order_script("10-first"))
    t.hook("onsessionopen", "50-bad.py", "import hookrunner\n" + source, 0o644)
    t.hook("onsessionopen", "60-good.py", plugin(t, "onsessionopen", "60-good"), 0o644)
    t.hook("onsessionopen", "90-last", t.order_script("90-last"))
    start = time.monotonic()
    result = t.run("run", "onsessionopen", env=SESSION, timeout=10)
    elapsed = time.monotonic() - start
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert t.order() == ["10-first", "60-good", "90-last"]
    assert re.search(expected, log(t)), log(t)
    assert "onsessionopen.d/60-good returned" in log(t)
    assert elapsed < 0.5 + 2, elapsed  # a stuck plugin does not hold up the login


def test_onsessionclose_failure_is_logged_and_later_hooks_run(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    t.hook("onsessionclose", "10-fails.py", plugin(t, "onsessionclose", "10-fails", "1 / 0"), 0o644)
    t.hook("onsessionclose", "20-runs.py", plugin(t, "onsessionclose", "20-runs"), 0o644)
    result = t.run("run", "close_session", env=SESSION)
    assert result.returncode == 1
    assert t.order() == ["10-fails", "20-runs"]
    assert "onsessionclose.d/10-fails raised ZeroDivisionError: division by zero" in log(t)


def test_onaccount_deny_stops_the_phase_and_tells_the_user(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    t.hook("onaccount", "10-deny.py", plugin(t, "onaccount", "10-deny",
                                              "raise hookrunner.Deny('outside office hours')"), 0o644)
    t.hook("onaccount", "20-never", t.order_script("20-never"))
    result, messages = t.run_msg_fd("run", "onaccount", env={**SESSION, "PAM_TYPE": "account"})
    assert result.returncode == 1
    assert t.order() == ["10-deny"]
    assert messages == b"error outside office hours\n"
    assert "onaccount.d/10-deny denied: outside office hours" in log(t)


def test_onsessionopen_plugins_under_the_system_python(hooktree: HookTree) -> None:
    """/usr/bin/python3 -I -S, as the PAM line runs it, with the distribution's pluggy."""
    system = Path("/usr/bin/python3")
    if subprocess.run([str(system), "-c", "import pluggy"], capture_output=True).returncode != 0:
        pytest.skip("no pluggy for /usr/bin/python3 (python3-pluggy)")
    t = hooktree
    config(t)
    t.hook("onsessionopen", "10-a.py", plugin(t, "onsessionopen", "10-a"), 0o644)
    t.hook("onsessionopen", "20-typo.py",
           "import hookrunner\n@hookrunner.hookimpl\ndef onsesionopen(ctx):\n    pass\n", 0o644)
    t.hook("onsessionopen", "30-b.py", plugin(t, "onsessionopen", "30-b", "return False"), 0o644)
    result = subprocess.run([str(system), "-I", "-S", str(MAIN), "run", "onsessionopen", "--root", str(t.root)],
                            env=SESSION, capture_output=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert t.order() == ["10-a", "30-b"]
    assert "20-typo failed to load: unknown hook 'onsesionopen'" in log(t)
    assert "30-b returned False" in log(t)


def test_onaccount_plugin_that_succeeds(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    t.hook("onaccount", "10-ok.py", plugin(t, "onaccount", "10-ok", "return True"), 0o644)
    assert t.run("run", "onaccount", env=SESSION).returncode == 0
    assert t.order() == ["10-ok"]


def test_plugin_that_holds_the_gil_ends_the_dispatcher(hooktree: HookTree) -> None:
    """A loop in C (a catastrophic regular expression) never lets the dispatcher wake up:
    the faulthandler backstop ends the process, exit 1, one second after the timeout."""
    t = hooktree
    config(t, '[hook."50-regex"]\ntimeout = 0.5\n')
    t.hook("onsessionopen", "50-regex.py", plugin(t, "onsessionopen", "50-regex",
                                                   "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"), 0o644)
    start = time.monotonic()
    result = t.run("run", "onsessionopen", env=SESSION, timeout=10)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert elapsed < 0.5 + 2, elapsed
    assert b"Timeout" in result.stderr and b"50-regex.py" in result.stderr


def test_plugin_file_obeys_the_safety_rules(hooktree: HookTree) -> None:
    """Refused like an unsafe executable: skipped, with the reason in the log."""
    t = hooktree
    config(t)
    t.hook("onsessionopen", "10-writable.py", plugin(t, "onsessionopen", "10-writable"), 0o664)
    t.hook("onsessionopen", "20-fine.py", plugin(t, "onsessionopen", "20-fine"), 0o644)
    result = t.run("run", "onsessionopen", env=SESSION)
    assert result.returncode == 0
    assert t.order() == ["20-fine"]
    assert re.search(r"onsessionopen\.d/10-writable refused: .*writable by group", log(t)), log(t)


def test_context_is_frozen_and_survives_bytes_that_are_not_utf8(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    body = f"""
import json, os
try:
    ctx.user = "root"
    frozen = False
except Exception:
    frozen = True
with open({str(t.out / "ctx.json")!r}, "w") as f:
    json.dump({{"user": os.fsencode(ctx.user).hex(), "raw": ctx.items[b"PAM_USER"].hex(),
               "tty": ctx.tty, "service": ctx.service, "rhost": ctx.rhost, "phase": ctx.phase,
               "pam_type": ctx.pam_type, "hook": ctx.hook, "root": ctx.root, "frozen": frozen,
               "authtok": ctx.authtok, "path": ctx.path("/etc/x.conf")}}, f)
ctx.log.info("user %s", ctx.user)
"""
    t.hook("onsessionopen", "50-ctx.py", plugin(t, "onsessionopen", "50-ctx", body), 0o644)
    user = b"al\xffce\n\"x\" $(id)"
    result = t.run("run", "onsessionopen", env={b"PAM_USER": user, b"PAM_SERVICE": b"login"})
    assert result.returncode == 0, log(t)
    got = json.loads((t.out / "ctx.json").read_text())
    assert got == {"user": user.hex(), "raw": user.hex(), "tty": None, "service": "login",
                   "rhost": None, "phase": "onsessionopen", "pam_type": "open_session",
                   "hook": "50-ctx", "root": str(t.root), "frozen": True, "authtok": None,
                   "path": f"{t.root}/etc/x.conf"}
    lines = [line for line in log(t).splitlines() if "50-ctx: user" in line]
    assert len(lines) == 1
    assert lines[0].endswith(r'onsessionopen.d/50-ctx: user al\xffce\x0a\x22x\x22 $(id)'), lines


def test_onauth_plugin_gets_the_password_only_when_configured(hooktree: HookTree) -> None:
    t = hooktree
    config(t, '[hook."20-opted-in"]\nauthtok = true\n')
    record = "with open({!r}, 'a') as f:\n    f.write(ctx.hook + ' ' + repr(ctx.authtok) + '\\n')"
    t.hook("onauth", "10-not.py", plugin(t, "onauth", "10-not", record.format(str(t.out / "pw"))), 0o644)
    t.hook("onauth", "20-opted-in.py",
           plugin(t, "onauth", "20-opted-in", record.format(str(t.out / "pw"))), 0o644)
    result = t.run("run", "auth", env=SESSION, input=b"s3cr\xc3\xa9t")
    assert result.returncode == 0, log(t)
    assert (t.out / "pw").read_text() == "10-not None\n20-opted-in 's3cr\xe9t'\n"
    assert "s3cr" not in log(t)


def test_onpasswd_plugin_gets_the_new_password_and_can_refuse_it(hooktree: HookTree) -> None:
    t = hooktree
    config(t, '[hook."10-strength"]\nauthtok = true\n')
    body = "if len(ctx.authtok or '') < 8:\n    raise hookrunner.Deny('too short')"
    t.hook("onpasswd", "10-strength.py", plugin(t, "onpasswd", "10-strength", body), 0o644)
    t.hook("onpasswd", "20-after", t.order_script("20-after"))
    assert t.run("run", "onpasswd", env=SESSION, input=b"short").returncode == 1
    assert t.order() == ["10-strength"]
    assert "onpasswd.d/10-strength denied: too short" in log(t)
    assert t.run("run", "onpasswd", env=SESSION, input=b"long enough").returncode == 0
    assert t.order() == ["10-strength", "10-strength", "20-after"]


def test_plugin_stdout_reaches_the_user_only_with_show_output(hooktree: HookTree) -> None:
    t = hooktree
    config(t, '[hook."20-shown"]\nshow_output = true\n')
    t.hook("onsessionopen", "10-quiet.py", plugin(t, "onsessionopen", "10-quiet", "print('quiet')"), 0o644)
    t.hook("onsessionopen", "20-shown.py",
           plugin(t, "onsessionopen", "20-shown", "print('Welcome,', ctx.user)"), 0o644)
    result = t.run("run", "onsessionopen", env=SESSION)
    assert result.returncode == 0
    assert result.stdout == b"Welcome, alice\n"


def test_later_plugins_of_a_phase_share_one_pluggy_manager_without_interference(hooktree: HookTree) -> None:
    """A misspelled hook in one plugin is that plugin's failure only, not the next one's."""
    t = hooktree
    config(t)
    t.hook("onsessionopen", "10-typo.py",
           "import hookrunner\n@hookrunner.hookimpl\ndef onsessionclos(ctx):\n    pass\n", 0o644)
    for name in ("20-a", "30-b"):
        t.hook("onsessionopen", f"{name}.py", plugin(t, "onsessionopen", name), 0o644)
    assert t.run("run", "onsessionopen", env=SESSION).returncode == 1
    assert t.order() == ["20-a", "30-b"]
    assert "did you mean 'onsessionclose'?" in log(t)


# -- cost: no pluggy, no importlib.metadata when there is no plugin -----------------------

def import_tree(tree: HookTree, phase: str) -> dict[str, str]:
    """{module: the module whose import imported it ("" at top level)}, from -X importtime
    (a child's line comes before its parent's, indented two more spaces)."""
    result = run_hookrunner(["run", phase, "--root", tree.root], env=SESSION,
                            python_args=("-X", "importtime", "-I", "-S", str(MAIN)))
    assert result.returncode == 0, result.stderr
    parent: dict[str, str] = {}
    waiting: dict[int, list[str]] = {}  # depth: modules whose parent is not seen yet
    for line in result.stderr.decode().splitlines():
        if not line.startswith("import time:") or line.endswith("| imported package"):
            continue
        field = line.split("|")[-1]
        name, depth = field.strip(), (len(field) - len(field.lstrip()) - 1) // 2
        for child in waiting.pop(depth + 1, []):
            parent[child] = name
        parent.setdefault(name, "")
        waiting.setdefault(depth, []).append(name)
    return parent


def imported(tree: HookTree, phase: str) -> set[str]:
    return set(import_tree(tree, phase))


def warm(tree: HookTree) -> None:
    """Run until the entry-point cache is written (it is not while site-packages just changed)."""
    deadline = time.monotonic() + 10
    while not (tree.root / CACHE).exists():
        assert time.monotonic() < deadline, "the entry-point cache is never written"
        run_hookrunner(["run", "onauth", "--root", tree.root], env=SESSION)


def test_no_pluggy_for_a_phase_without_plugins(hooktree: HookTree) -> None:
    t = hooktree
    t.hook("onsessionopen", "10-a", t.order_script("10-a"))
    t.hook("onsessionclose", "10-a.py", plugin(t, "onsessionclose", "10-a"), 0o644)
    warm(t)
    modules = imported(t, "onsessionopen")
    assert "hookrunner.dispatch" in modules  # the measurement works
    assert not {"pluggy", "hookrunner.plugins", "importlib.metadata", "logging"} & modules
    # controls: a phase with a plugin file imports pluggy; a cold cache imports importlib.metadata
    with_plugin = import_tree(t, "onsessionclose")
    assert {"pluggy", "hookrunner.plugins"} <= set(with_plugin)
    # ... but not the config validation without a config file, nor logging, nor typing from
    # hookrunner's own modules (~2 ms; pluggy >= 1.1 imports it itself, Debian's 1.0 does not)
    unwanted = {"hookrunner.schema", "importlib.metadata", "logging"} & set(with_plugin)
    assert not unwanted, unwanted
    assert not with_plugin.get("typing", "").startswith("hookrunner"), with_plugin.get("typing")
    assert with_plugin["pluggy._manager"] == "pluggy"  # the tree is read right
    assert "hookrunner.schema" not in modules
    (t.root / CACHE).unlink()
    assert "importlib.metadata" in imported(t, "onsessionopen")


def test_importing_hookrunner_imports_no_pluggy() -> None:
    code = ("import sys, hookrunner\nassert 'pluggy' not in sys.modules\n"
            "hookrunner.hookimpl\nassert 'pluggy' in sys.modules\n")
    result = subprocess.run([str(PYTHON), "-I", "-c",
                             f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + code],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr


# -- every hookspec is documented and tested (datasette style) ----------------------------

HOOKSPECS = sorted(name for name, f in vars(hookrunner.hookspecs).items()
                   if callable(f) and hasattr(f, "hookrunner_spec"))


def test_the_hookspecs_are_the_phases() -> None:
    from hookrunner.phases import PHASES

    assert sorted(p.name for p in PHASES) == HOOKSPECS


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_hookspec_is_documented(hook: str) -> None:
    guide = (REPO / "docs/plugins.md").read_text()
    assert f"### `{hook}(ctx)`" in guide, f"docs/plugins.md has no section for {hook}"
    assert (getattr(hookrunner.hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    readme = (REPO / "README.md").read_text()
    section = readme.partition("## Writing a Python plugin")[2].partition("\n## ")[0]
    assert "docs/plugins.md" in section, "README's 'Writing a Python plugin' does not point at the guide"


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_hookspec_has_a_test(hook: str) -> None:
    names = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    assert any(name.startswith(f"test_{hook}_") for name in names), f"no test_{hook}_* test"


def test_ctx_log_imports_logging_only_when_a_plugin_logs(hooktree: HookTree) -> None:
    t = hooktree
    config(t)
    quiet = f"""
import sys
with open({str(t.out / "quiet")!r}, "w") as f:
    f.write(str("logging" in sys.modules) + " " + ctx.log.name)
"""
    loud = f"""
import logging, sys
ctx.log.warning("careful %s", ctx.user)
ctx.log.log(logging.ERROR, "bad")
try:
    1 / 0
except ZeroDivisionError:
    ctx.log.exception("caught")
with open({str(t.out / "loud")!r}, "w") as f:
    f.write(f"{{ctx.log.isEnabledFor(logging.DEBUG)}} {{ctx.log.getEffectiveLevel()}}")
"""
    t.hook("onsessionopen", "10-quiet.py", plugin(t, "onsessionopen", "10-quiet", quiet), 0o644)
    t.hook("onsessionopen", "20-loud.py", plugin(t, "onsessionopen", "20-loud", loud), 0o644)
    result = t.run("run", "onsessionopen", env={b"PAM_USER": b"alice"})
    assert result.returncode == 0, log(t)
    assert (t.out / "quiet").read_text() == "False hookrunner.onsessionopen.10-quiet"
    assert (t.out / "loud").read_text() == "True 10"
    records = log(t)
    assert "onsessionopen.d/20-loud: careful alice" in records
    assert "onsessionopen.d/20-loud: bad" in records
    assert "onsessionopen.d/20-loud: caught" in records


def test_an_inheritable_descriptor_a_plugin_opens_does_not_reach_later_hooks(
        hooktree: HookTree) -> None:
    # The dispatcher lists its inheritable descriptors once per phase, and again after a plugin.
    t = hooktree
    config(t)
    fds = "#!/bin/sh\nls /proc/$$/fd > {out}/{name}\n"
    t.hook("onsessionopen", "10-a", fds.format(out=t.out, name="10-a"))
    body = f"""
import os
os.dup2(os.open("/dev/null", os.O_RDONLY), 40)  # dup2: inheritable
with open({str(t.out / "20-p")!r}, "w") as f:
    f.write(str(os.get_inheritable(40)))
"""
    t.hook("onsessionopen", "20-p.py", plugin(t, "onsessionopen", "20-p", body), 0o644)
    t.hook("onsessionopen", "30-b", fds.format(out=t.out, name="30-b"))
    result = t.run("run", "onsessionopen", env={b"PAM_USER": b"alice"})
    assert result.returncode == 0, log(t)
    assert (t.out / "20-p").read_text() == "True"
    before, after = ((t.out / n).read_text().split() for n in ("10-a", "30-b"))
    assert "40" not in after
    assert after == before



PACKAGE = Path(__file__).parent.parent / "hookrunner"


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py")
                                           if not p.stem.startswith("pam")))  # `check --pam-dir` only
def test_no_module_imports_typing_at_run_time(module: str) -> None:
    """`typing` costs a phase ~2 ms: the modules a phase may import import it only under
    ``if TYPE_CHECKING:`` (the venv's pluggy imports it anyway, which hides a regression
    from the -X importtime test above)."""
    path = PACKAGE / f"{module}.py"
    tree = ast.parse(path.read_text())
    guarded = {id(node) for top in ast.walk(tree)
               if isinstance(top, ast.If) and isinstance(top.test, ast.Name) and top.test.id == "TYPE_CHECKING"
               for node in ast.walk(top)}
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        assert "typing" not in names, f"{path.name}:{node.lineno} imports typing at run time"
