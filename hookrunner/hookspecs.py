"""The hooks a Python plugin can implement: one per PAM phase.

Each is called with one argument, ``ctx`` (a frozen :class:`hookrunner.PamContext`: the PAM
items as ``str`` or ``None``, ``phase``, ``hook``, ``root``, ``log``, and ``authtok`` where
allowed), and on its own: hookrunner, not pluggy, decides the order (by the plugin's name,
among the executables) and isolates each call, in a worker thread bounded by the hook's
timeout.

A hook *fails* when it raises :class:`hookrunner.Deny` (outcome ``deny``: the message is
logged, and shown to the user through ``pam_hookrunner.so``), raises any other exception
(outcome ``error``: its type, message, file and line are logged, the traceback at debug
level), returns ``False`` (outcome ``fail``), or runs past its timeout (outcome ``timeout``).
Any other return value (``None``, ``True``) is success. Whether a failure denies the login
and whether later hooks still run is the phase's policy (DESIGN.md). A plugin is imported
(and its hook names checked against these specs) when its phase first needs it; what it
prints on ``sys.stdout`` is captured like an executable's output.
"""

from __future__ import annotations

import pluggy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see context.py
if TYPE_CHECKING:
    from typing import Any

    from .context import PamContext

hookspec = pluggy.HookspecMarker("hookrunner")


@hookspec
def onauth(ctx: PamContext) -> Any:
    """Called in ``pam_sm_authenticate`` (PAM_TYPE=auth), after the stack's earlier auth modules.

    ``ctx.authtok`` is the password (``str``; bytes that are not UTF-8 as surrogates) only if
    the config says ``authtok = true`` for this hook; otherwise ``None``. Failing fails the
    authentication; the phase stops at the first failure.
    """


@hookspec
def onaccount(ctx: PamContext) -> Any:
    """Called in ``pam_sm_acct_mgmt`` (PAM_TYPE=account): may this user log in now, from here?

    Failing denies the login; the phase stops at the first failure. ``ctx.authtok`` is None.
    """


@hookspec
def onpasswd(ctx: PamContext) -> Any:
    """Called in ``pam_sm_chauthtok`` (PAM_TYPE=password) when the password is changed.

    ``ctx.authtok`` is the new password only with ``authtok = true``, else ``None``. Failing
    fails the change; the phase stops at the first failure.
    """


@hookspec
def onsessionopen(ctx: PamContext) -> Any:
    """Called in ``pam_sm_open_session`` (PAM_TYPE=open_session), as the session starts.

    Every session hook runs even if an earlier one failed; any failure fails the phase.
    ``ctx.authtok`` is None.
    """


@hookspec
def onsessionclose(ctx: PamContext) -> Any:
    """Called in ``pam_sm_close_session`` (PAM_TYPE=close_session), as the session ends.

    Every session hook runs even if an earlier one failed; any failure fails the phase.
    ``ctx.authtok`` is None. It runs in a new process: keep what the open hook wants to
    share in a file (``ctx.path("/run/...")``).
    """
