"""Be all root when started as root: what setuid callers (su, passwd, chsh, chfn) leave out.

A setuid-root program runs PAM with the caller's real uid and group list and euid 0; pam_exec
without ``seteuid`` keeps that for its child (``Uid: <caller> 0 0 0``). dash and bash drop to
the real uid when they start, so a root shell hook would run as the caller (a deny hook
reading a root-only list fails open), and the caller could signal us mid-phase. So, whatever
the PAM line says: real, effective and saved uid and gid 0, and root's groups, before
anything else is done.
"""

from __future__ import annotations

import os


class PrivilegeError(Exception):
    pass


def become_root() -> bool:
    """With euid 0, make every uid and gid 0 and the groups root's; True if anything changed.

    Nothing to do (the common case: sshd, login, a root shell) costs three system calls."""
    if os.geteuid() != 0:
        return False  # an unprivileged caller (a screen locker): nothing to regain
    if (os.getresuid() == (0, 0, 0) and os.getresgid() == (0, 0, 0)
            and set(os.getgroups()) <= {0}):
        return False
    try:
        os.setresgid(0, 0, 0)
        try:
            os.initgroups("root", 0)  # root's own supplementary groups, as login(1) sets them
        except (KeyError, OSError):  # no "root" in the group database: root's group alone
            os.setgroups([0])
        os.setresuid(0, 0, 0)  # last: it gives up the right to change the others
    except OSError as e:
        # euid 0 without CAP_SETUID/CAP_SETGID: running hooks half-root would fail open.
        raise PrivilegeError(f"cannot make uid and gid 0: {e.strerror}") from None
    return True
