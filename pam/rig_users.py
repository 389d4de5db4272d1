"""The rig's users: a real temporary user (``useradd -m``, the password set by ``chpasswd``
on stdin), removed with ``userdel -r``. Part of pamrig (pamrig.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str
    uid: int
    gid: int
    home: Path


@contextlib.contextmanager
def temp_user(*, password: str | None = None, shell: str = "/bin/sh",
              prefix: str = "hrt-") -> Iterator[User]:
    """A real user (``useradd -m``, password set by ``chpasswd`` on stdin); ``userdel -r``."""
    import pwd

    name = f"{prefix}{secrets.token_hex(4)}"
    password = password or secrets.token_urlsafe(12)
    subprocess.run(["useradd", "--create-home", "--shell", shell, name], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        pw = pwd.getpwnam(name)
        yield User(name, password, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))
    finally:
        subprocess.run(["userdel", "--force", "--remove", name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
