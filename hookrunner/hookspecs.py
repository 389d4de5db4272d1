"""The hooks a Python plugin can implement: one per PAM phase.

Each is called with one argument, ``ctx`` (a frozen :class:`hookrunner.PamContext`), on its
own: hookrunner, not pluggy, decides the order (by the plugin's name, among the executables)
and isolates each call. A hook *fails* when it raises :class:`hookrunner.Deny` (the message is
logged, and shown to the user by pam_hookrunner.so), raises any other exception (logged with
its type, file and line; the traceback at debug level), returns ``False``, or runs past its
timeout. Any other return value (``None``, ``True``) is success. Whether a failure denies the
login and whether later hooks still run is the phase's policy (DESIGN.md).
"""

from __future__ import annotations

from typing import Any

import pluggy

from .context import PamContext

hookspec = pluggy.HookspecMarker("hookrunner")


@hookspec
def onauth(ctx: PamContext) -> Any:
    """Called in ``pam_sm_authenticate`` (PAM_TYPE=auth), after the admin's earlier auth modules.

    ``ctx.authtok`` holds the password only if the config says ``authtok = true`` for this
    hook; otherwise it is ``None``. Failing denies the login (auth stops at the first failure).
    """


@hookspec
def onaccount(ctx: PamContext) -> Any:
    """Called in ``pam_sm_acct_mgmt`` (PAM_TYPE=account): may this user log in now, from here?

    Failing denies the login (account stops at the first failure). ``ctx.authtok`` is None.
    """


@hookspec
def onpasswd(ctx: PamContext) -> Any:
    """Called in ``pam_sm_chauthtok`` (PAM_TYPE=password) when the password is changed.

    ``ctx.authtok`` is the new password only with ``authtok = true``. Failing fails the change.
    """


@hookspec
def onsessionopen(ctx: PamContext) -> Any:
    """Called in ``pam_sm_open_session`` (PAM_TYPE=open_session), as the session starts.

    Every session hook runs even if an earlier one failed; any failure fails the phase.
    """


@hookspec
def onsessionclose(ctx: PamContext) -> Any:
    """Called in ``pam_sm_close_session`` (PAM_TYPE=close_session), as the session ends.

    Every session hook runs even if an earlier one failed; any failure fails the phase.
    """
