"""One phase, as a list of steps: discover, check, run each hook, apply the policy."""

from __future__ import annotations

import os
import time

from .discovery import discover
from .environment import hook_environment
from .log import escape, fields
from .record import Record
from .runner import HookResult, RunAs, inherited_fds, run_exec
from .safety import UnsafeError, Verified, open_checked
from .spawnerror import start_failure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import pwd
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import pluggy

    from .conditions import Subject
    from .config import Config, HookConfig
    from .discovery import Candidate, EntryPoint
    from .log import Log
    from .phases import Phase


LOGGED_OUTPUT = 2048  # bytes of a hook's stdout/stderr put in its log record
def runas_refused(runas: str) -> str:
    """Why a Python plugin with ``runas`` fails without running (the one-line reason logged,
    listed and reported by ``check``). It runs inside the dispatcher, as root: honouring
    ``runas`` would take a forked copy of a root process (the password, root's descriptors,
    other plugins' threads and locks) dropping privileges; an executable hook does that by
    exec. Failing that hook, not skipping it, keeps a deny plugin from failing open."""
    return (f"not run: a Python plugin cannot honour runas = {escape(runas)} (it runs inside "
            f"the dispatcher, as root); make it an executable hook, or drop runas")


class Ran(Record):
    """One hook that ran: what it was, what it did, whether its failure counts."""

    __slots__ = ("candidate", "optional", "result")
    _fields = ("candidate", "result", "optional")

    def __init__(self, candidate: Candidate, result: HookResult, optional: bool) -> None:
        self.candidate = candidate
        self.result = result
        self.optional = optional

    def __iter__(self) -> Iterator[object]:  # unpacks like the NamedTuple it was
        return iter(self._values())


class Messages:
    """What reaches the user: ``--msg-fd`` lines (pam_hookrunner.so) or stdout (pam_exec)."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd

    def send(self, level: str, text: bytes) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return
        from .terminal import MESSAGE_LINE, showable  # only a phase with something to say

        if self.fd is not None:
            payload = b"".join(level.encode() + b" " + showable(line, MESSAGE_LINE) + b"\n"
                               for line in lines)
            fd = self.fd
        elif level == "info":  # pam_exec's stdout: its lines go to the user as they are
            payload, fd = b"".join(showable(line) + b"\n" for line in lines), 1
        else:
            return
        try:
            os.write(fd, payload)
        except OSError:
            pass


class Dispatch:
    """Everything a phase run needs; built once by the CLI (or by a test)."""

    def __init__(
        self,
        phase: Phase,
        items: Mapping[bytes, bytes],
        config: Config,
        log: Log,
        *,
        root: str | os.PathLike[str] = "/",
        caller_env: Mapping[bytes, bytes] | None = None,
        authtok: bytes | None = None,
        messages: Messages | None = None,
        entry_points: Callable[[], Sequence[EntryPoint]] | None = None,
    ) -> None:
        self.phase = phase
        self.items = dict(items)
        self.config = config
        self.log = log
        self.root = os.fspath(root)
        self.caller_env = caller_env or {}
        self.authtok = authtok
        self.messages = messages or Messages()
        self.entry_points = entry_points
        self._pm: pluggy.PluginManager | None = None
        # Per phase run, not per hook: what stays the same from one hook to the next.
        self._verified: Verified | None = None  # directories already checked
        self._inherited: list[int] | None = None  # our inheritable fds; plugins may add some
        self._fields: str | None = None
        self._root_env: bytes | None = None
        self._subject: Subject | None = None  # what the hooks' conditions look at
        self.ran = 0  # hooks that ran in the last run(), kept or not

    def candidates(self) -> list[Candidate]:
        eps = self.entry_points() if self.entry_points else ()
        return discover(self.phase.name, self.root, eps)

    def run(self, *, keep: bool = True) -> tuple[int, list[Ran]]:
        """Run the phase; the exit status (0 or 1) and what each hook did (``keep``), else
        an empty list: ``run`` needs only the count (``self.ran``), not 1000 results."""
        phase_cfg = self.config.phase(self.phase.name)
        stop = phase_cfg.stop_on_failure
        stop_on_failure = self.phase.stop_on_failure if stop is None else stop
        deadline = time.monotonic() + (phase_cfg.timeout or self.config.phase_timeout)
        ran: list[Ran] = []
        self.ran = 0
        failed = False
        self._verified = Verified(self.root)
        self._inherited = None
        self._fields = None
        self._subject = None
        candidates = self.candidates()
        if any(h.background for h in self.config.hooks.values()):
            from . import background

            background.refuse(self.phase, candidates, self.config, self.root)  # before any hook runs
        for candidate in candidates:
            if candidate.action != "run":
                if candidate.reason.startswith("refused:"):  # an unsafe mask
                    self.log.warning(f"{self.phase.name}.d/{escape(candidate.name)} "
                                     f"{candidate.reason} {self.fields()}")
                elif candidate.action == "skip":
                    self.log.debug(f"{self.phase.name}.d/{escape(candidate.name)} skipped: "
                                   f"{escape(candidate.reason)}")
                continue
            hook_cfg = self.config.hook(candidate.name)
            if hook_cfg.conditions is not None:  # before the hook's file is even opened
                unmet = self.unmet(hook_cfg)
                if unmet is not None:
                    self.log.debug(f"{self.phase.name}.d/{escape(candidate.name)} skipped: "
                                   f"condition {unmet} {self.fields()}")
                    if keep:
                        ran.append(Ran(candidate, HookResult("skip", f"skipped: {unmet}"),
                                       hook_cfg.optional))
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result = HookResult("timeout", "not run: the phase deadline passed")
            else:
                timeout = hook_cfg.timeout or self.config.timeout
                try:
                    result = self.run_one(candidate, timeout if hook_cfg.background
                                          else min(timeout, remaining))
                except Exception as e:  # MemoryError, or a bug of ours: still this hook's record
                    result = self.internal_error(candidate, e)
            if hook_cfg.background and result.outcome != "refused":  # never the PAM result
                self.ran += 1
                if keep:
                    ran.append(Ran(candidate, result, hook_cfg.optional))
                if result.outcome == "started":
                    self.log.debug(f"{self.phase.name}.d/{escape(candidate.name)} {result.message}")
                else:
                    self.report(candidate, result, False, background=True)
                continue
            if result.outcome == "refused":  # DESIGN: skipped with a logged reason, not a failure
                self.log.warning(f"{self.phase.name}.d/{escape(candidate.name)} {result.message} "
                                 f"{self.fields()}")
                continue
            if result.outcome == "skip":  # an installed plugin without this phase's hook
                self.log.debug(f"{self.phase.name}.d/{escape(candidate.name)} {result.message}")
                continue
            self.ran += 1
            if keep:
                ran.append(Ran(candidate, result, hook_cfg.optional))
            self.report(candidate, result, hook_cfg.optional)
            if hook_cfg.show_output and result.stdout:
                self.messages.send("info", result.stdout)
            if not result.ok and not hook_cfg.optional:
                failed = True
                if result.outcome == "deny":
                    self.messages.send("error", result.message.removeprefix("denied: ").encode(
                        "utf-8", "surrogateescape"))
                if stop_on_failure:
                    break
        return (1 if failed else 0), ran

    def internal_error(self, candidate: Candidate, e: Exception) -> HookResult:
        """The hook's failure when running it raised: its record says so, after the traceback
        (one escaped line); the policy then applies as to any failure."""
        try:
            import traceback

            self.log.error(f"{self.phase.name}.d/{escape(candidate.name)}: internal error: "
                           f"{escape(traceback.format_exc())}")
        except Exception:  # noqa: S110 - no memory for a traceback: the record still goes out
            pass
        return HookResult("error", f"could not be run: internal error: {type(e).__name__}: {e}")

    def unmet(self, hook_cfg: HookConfig) -> str | None:
        """None if the hook's conditions hold for this PAM context, else which one does not."""
        from .conditions import Subject, unmet

        assert hook_cfg.conditions is not None
        if self._subject is None:
            self._subject = Subject(self.items)
        return unmet(hook_cfg.conditions, self._subject)

    def fields(self) -> str:
        """user=... service=... rhost=...: the same for every record of the phase."""
        if self._fields is None:
            self._fields = fields(self.items)
        return self._fields

    def run_one(self, candidate: Candidate, timeout: float) -> HookResult:
        try:
            checked = (open_checked(candidate.path, self.root, self._verified)
                       if candidate.kind != "entrypoint" else None)
        except UnsafeError as e:
            return HookResult("refused", f"refused: {e}")
        except OSError as e:  # out of descriptors or memory: a failure, never a skipped hook
            return HookResult("error", f"could not be started: cannot open it: {start_failure(e)}")
        try:
            if candidate.kind == "exec":
                real = checked.real if checked else candidate.path
                if self.config.hook(candidate.name).background:
                    return self.start_background(candidate, timeout, real)
                return self.run_exec(candidate, timeout, real)
            return self.run_plugin(candidate, timeout, checked.fd if checked else None)
        finally:
            if checked is not None:
                os.close(checked.fd)

    def start_background(self, candidate: Candidate, timeout: float, real: str) -> HookResult:
        """Started by a supervisor that outlives us, runs it as run_exec would, writes its record."""
        from . import background

        def run() -> HookResult:
            self._inherited = []  # the supervisor closed every descriptor above 2
            return self.run_exec(candidate, timeout, real)

        def report(result: HookResult, log: Log) -> None:
            self.log = log
            self.report(candidate, result, False, background=True)

        return background.start(run, report, self.log)

    def run_exec(self, candidate: Candidate, timeout: float, real: str) -> HookResult:
        hook_cfg = self.config.hook(candidate.name)
        runas = None
        user_entry = None
        if hook_cfg.runas:
            try:
                user_entry, runas = self.resolve_user(hook_cfg.runas)
            except LookupError as e:
                return HookResult("error", str(e))
        env = hook_environment(self.items, self.phase.name, candidate.name,
                               pass_env=self.config.pass_env, caller=self.caller_env,
                               user=user_entry)
        if self._root_env is None:
            self._root_env = (b"" if os.path.normpath(self.root) == "/"
                              else os.fsencode(os.path.abspath(self.root)))
        if self._root_env:  # state-keeping hooks put their files below --root too
            env[b"HOOKRUNNER_ROOT"] = self._root_env
        argv = [os.fsencode(candidate.path), *(os.fsencode(a) for a in hook_cfg.args)]
        # An opted-in hook always gets a stdin pipe: the password, or nothing if there is none.
        stdin = (self.authtok or b"") if (hook_cfg.authtok and self.phase.authtok) else None
        inherited = self._inherited
        if inherited is None:
            inherited = inherited_fds()
            if not self.plugin_still_running():  # else it may open more: list them each time
                self._inherited = inherited
        return run_exec(argv, env, timeout=timeout, grace=self.config.kill_grace,
                        max_output=self.config.max_output, stdin=stdin, runas=runas,
                        inherited=inherited)

    def plugin_still_running(self) -> bool:
        """A plugin of this phase ran past its timeout and its thread still runs."""
        if self._pm is None:
            return False
        from . import plugins

        return plugins.abandoned_threads()

    def resolve_user(self, runas: str) -> tuple[pwd.struct_passwd, RunAs]:
        import pwd

        if runas == "@user":
            raw = self.items.get(b"PAM_USER")
            if raw is None:
                raise LookupError("runas @user: PAM_USER is not set")
            name = os.fsdecode(raw)
        else:
            name = runas
        try:
            entry = pwd.getpwnam(name)
        except (KeyError, ValueError):
            raise LookupError(f"runas: no such user {escape(name)}") from None
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return entry, RunAs(entry.pw_uid, entry.pw_gid, groups)

    def run_plugin(self, candidate: Candidate, timeout: float, fd: int | None) -> HookResult:
        hook_cfg = self.config.hook(candidate.name)
        if hook_cfg.runas:  # never run as root what was meant to run as a user; never skip it
            return HookResult("error", runas_refused(hook_cfg.runas))
        pm = self.plugin_manager()
        from . import pluginio, plugins
        from .context import PamContext  # dataclasses: only for a phase with plugins

        authtok = self.authtok if (hook_cfg.authtok and self.phase.authtok) else None
        ctx = PamContext.from_items(  # the hook's own logger from the start: logging stays lazy
            self.phase.name, self.items, root=os.path.abspath(self.root), hook=candidate.name,
            log=pluginio.plugin_logger(self.log, self.phase.name, candidate.name),
            authtok=None if authtok is None else os.fsdecode(authtok))

        self._inherited = None  # a plugin may open an inheritable descriptor: list them again

        def load() -> object:
            if fd is not None:
                return plugins.load_file(pm, candidate, fd)
            return plugins.load_entry_point(pm, candidate)

        return plugins.call(pm, candidate, ctx, timeout, load)

    def plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            from .entrypoints import ensure_site_path

            ensure_site_path()  # before plugins.py imports pluggy: -S left it off sys.path
            from . import plugins

            self._pm = plugins.new_manager()
        return self._pm

    def report(self, candidate: Candidate, result: HookResult, optional: bool, *,
               background: bool = False) -> None:
        """One log record per hook: phase, name, outcome, status or signal, duration, who."""
        what = f"{self.phase.name}.d/{escape(candidate.name)} {result.message}"
        extra = (f" ({int(result.duration * 1000)} ms{', optional' if optional else ''}"
                 f"{', background' if background else ''})")
        record = f"{what}{extra} {self.fields()} outcome={result.outcome}"
        if result.ok:
            self.log.info(record)
        else:
            self.log.warning(record)
        if candidate.kind != "exec" and result.stderr:  # a plugin's traceback
            self.log.debug(f"{self.phase.name}.d/{escape(candidate.name)}: {escape(result.stderr)}")
        for name, data in (("stdout", result.stdout), ("stderr", result.stderr)):
            if data and candidate.kind == "exec":
                more = f" ... ({len(data) - LOGGED_OUTPUT} more bytes)" if len(data) > LOGGED_OUTPUT else ""
                self.log.info(f"{self.phase.name}.d/{escape(candidate.name)} {name}: "
                              f"{escape(data[:LOGGED_OUTPUT])}{more}")
        if result.dropped:
            self.log.info(f"{self.phase.name}.d/{escape(candidate.name)} output: "
                          f"{result.dropped} bytes beyond the limit were dropped")

