"""The environment a hook gets: an allowlist built from nothing, never the caller's."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import pwd
    from collections.abc import Iterable, Mapping

FIXED_PATH = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Never passed, whatever the config says (sudo's env.c; glibc's UNSECURE_ENVVARS):
# ^(LD_.*|PYTHON.*|BASH_ENV|ENV|IFS|BASH_FUNC_.*|PERL5.*|GCONV_PATH|LOCPATH)$, as string
# checks (``re`` would cost every login a few milliseconds to import).
FORBIDDEN_PREFIXES = (b"LD_", b"PYTHON", b"BASH_FUNC_", b"PERL5")
FORBIDDEN_NAMES = frozenset((b"BASH_ENV", b"ENV", b"IFS", b"GCONV_PATH", b"LOCPATH"))
# Names hookrunner sets itself; pass_env cannot supply or override them:
# ^(PAM_.*|HOOKRUNNER_.*|PATH|HOME|USER|LOGNAME|SHELL)$.
RESERVED_PREFIXES = (b"PAM_", b"HOOKRUNNER_")
RESERVED_NAMES = frozenset((b"PATH", b"HOME", b"USER", b"LOGNAME", b"SHELL"))


def forbidden(name: bytes) -> bool:
    """Never passed to a hook (a loader, interpreter or shell would act on it)."""
    return name in FORBIDDEN_NAMES or name.startswith(FORBIDDEN_PREFIXES)


def reserved(name: bytes) -> bool:
    """Set by hookrunner itself; pass_env cannot supply it."""
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def passable(name: bytes) -> bool:
    return not forbidden(name) and not reserved(name)


def hook_environment(
    items: Mapping[bytes, bytes],
    phase: str,
    hook: str,
    *,
    pass_env: Iterable[str] = (),
    caller: Mapping[bytes, bytes] | None = None,
    user: pwd.struct_passwd | None = None,
) -> dict[bytes, bytes]:
    """PAM items + HOOKRUNNER_* + fixed PATH (+ runas user's HOME/USER/LOGNAME/SHELL)."""
    env: dict[bytes, bytes] = {}
    for name in pass_env:
        key = name.encode("ascii", "replace")
        if caller is not None and key in caller and passable(key):
            env[key] = caller[key]
    for key, value in items.items():
        if key.startswith(b"PAM_") and b"\0" not in value:
            env[key] = value
    env[b"HOOKRUNNER_PHASE"] = phase.encode()
    env[b"HOOKRUNNER_HOOK"] = hook.encode()
    env[b"PATH"] = FIXED_PATH
    if user is not None:
        env[b"HOME"] = user.pw_dir.encode("utf-8", "surrogateescape")
        env[b"USER"] = env[b"LOGNAME"] = user.pw_name.encode("utf-8", "surrogateescape")
        env[b"SHELL"] = (user.pw_shell or "/bin/sh").encode("utf-8", "surrogateescape")
    return env
