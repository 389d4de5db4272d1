"""The rig's python-pam: its transaction (authenticate with ``call_end=False``, open_session,
close_session, end) in a child process, under pam_wrapper or against the real /etc/pam.d.
Run as a script (``rig_pypam.py _python_pam_child``) it is that child. Part of pamrig.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rig_run import run_pam
from rig_services import PAM_WRAPPER_LIB, wrapper_env
from rig_syslog import SyslogSink


@dataclasses.dataclass(frozen=True)
class PyPamResult:
    """Return codes of one python-pam transaction (PAM_SUCCESS is 0; None: not reached)."""

    authenticate: int
    reason: str
    open_session: int | None
    close_session: int | None
    end: int
    messages: tuple[str, ...]


def python_pam(service: str, user: str, password: str, *, rhost: str | None = None,
               ruser: str | None = None, tty: str | None = None,
               service_dir: Path | None = None, python: str = sys.executable,
               timeout: float = 60.0, syslog: SyslogSink | None = None) -> PyPamResult:
    """python-pam's transaction in a child process: authenticate (call_end=False, so
    authenticate + acct_mgmt + setcred), open_session, close_session, end.

    A child because libpam is loaded once per process and must be the right one: under
    pam_wrapper the child gets PAM_WRAPPER* in its environment before it starts (the
    wrapper reads them when it is loaded) and loads libpam_wrapper.so in place of libpam,
    since ctypes looks symbols up in the library it opened and so bypasses LD_PRELOAD.
    """
    request = {"service": service, "user": user, "password": password, "rhost": rhost,
               "ruser": ruser, "tty": tty, "wrapper": service_dir is not None}
    env = wrapper_env(service_dir, preload=False) if service_dir is not None else None
    out = run_pam([python, str(Path(__file__).resolve()), "_python_pam_child"],
                  input=json.dumps(request), env=env, timeout=timeout, syslog=syslog)
    if out.returncode != 0:
        raise RuntimeError(f"python-pam child failed ({out.returncode}): {out.stderr.strip()}")
    d = json.loads(out.stdout)
    return PyPamResult(d["authenticate"], d["reason"], d["open_session"], d["close_session"],
                       d["end"], tuple(d["messages"]))


def _python_pam_child() -> int:
    import importlib
    from ctypes import c_char_p

    req = json.loads(sys.stdin.read())
    pam: Any = importlib.import_module("pam")  # python-pam (untyped)
    internals: Any = importlib.import_module("pam.__internals")

    if req["wrapper"]:
        real_find = internals.find_library

        def find_library(name: str) -> str | None:
            return str(PAM_WRAPPER_LIB) if name == "pam" else real_find(name)

        internals.find_library = find_library  # before the first pam.pam()

    p = pam.pam()
    items = [(internals.PAM_RHOST, req["rhost"]), (internals.PAM_RUSER, req["ruser"]),
             (internals.PAM_TTY, req["tty"])]
    keep = []  # the C strings must outlive the calls
    real_authenticate = p.pam_authenticate

    def authenticate_with_items(handle: Any, flags: int) -> int:
        # python-pam has no setter for these: set them on the handle just before auth.
        for item, value in items:
            if value is not None:
                keep.append(c_char_p(value.encode()))
                rc = p.pam_set_item(handle, item, keep[-1])
                if rc != 0:
                    return int(rc)
        return int(real_authenticate(handle, flags))

    p.pam_authenticate = authenticate_with_items
    ok = p.authenticate(req["user"], req["password"], service=req["service"], call_end=False)
    result: dict[str, Any] = {"authenticate": p.code, "reason": str(p.reason),
                              "open_session": None, "close_session": None}
    if ok:
        result["open_session"] = p.open_session()
        result["close_session"] = p.close_session()
    result["end"] = p.end()
    result["messages"] = [str(m) for m in p.messages]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["_python_pam_child"]:
        sys.exit(_python_pam_child())
    sys.exit(f"usage: {sys.argv[0]} _python_pam_child  (internal; import this module instead)")
