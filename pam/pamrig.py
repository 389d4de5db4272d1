"""pamrig: drive a real libpam through ``pam_exec.so`` -> hookrunner, for ``make demo`` and tests.

One place for the mechanics that ``pam/demo.py`` and ``tests/e2e/`` share (no pytest here).
This module only re-exports; the rig is split by what it does:

* ``rig_tree``: a root-owned hook tree for ``hookrunner run --root ROOT``, hooks in it, among
  them a *recorder* that appends what it saw (argv, exact environment, stdin, pid) as one JSON
  line to a root-only log file; ``wait_for`` (poll with a deadline, never sleep to sync);
* ``rig_services``: PAM service files that call the dispatcher through ``pam_exec.so``:
  flattened ones for pam_wrapper (``pam_matrix.so`` as the password database) and real ones
  written to ``/etc/pam.d/hookrunner-test-<id>`` for the life of a ``with`` block; the
  ``/tmp/pam.X`` directories pam_wrapper leaves behind, removed;
* ``rig_run``: runners with timeouts that kill everything a program started and say so in
  one sentence: ``pamtester`` and ``su``, under pam_wrapper or on the real /etc/pam.d;
* ``rig_pypam``: python-pam's transaction in a child process;
* ``rig_users``: a temporary user (``useradd`` / ``chpasswd`` / ``userdel -r``);
* ``rig_syslog``: a /dev/log of its own for every transaction (a mount namespace whose
  /dev/log is a socket the rig reads), so nothing depends on, or captures, the host's syslog;
* ``rig_sshd``: a real sshd on 127.0.0.1 and its ssh clients.

Passwords travel only on stdin (pamtester's prompt, python-pam's conversation), never argv.
Import it with ``sys.path.insert(0, "<repo>/pam")``; ``pam/`` must stay a directory without
``__init__.py`` so that ``import pam`` still finds python-pam.
"""

from __future__ import annotations

from rig_pypam import PyPamResult, python_pam
from rig_run import PAMTESTER_OPS, Outcome, RigTimeout, kill_tree, pamtester, run, run_pam, su
from rig_services import (
    LIBDIR,
    PAM_D,
    PAM_MATRIX,
    PAM_WRAPPER_LIB,
    SERVICE_PREFIX,
    Controls,
    debian_stack_with,
    dispatcher_argv,
    exec_line,
    matrix_service,
    pam_service,
    sweep_pam_wrapper_dirs,
    unix_service,
    wrapper_env,
    write_passdb,
    write_wrapper_service,
)
from rig_sshd import Sshd, free_port, install_key, ssh_key, ssh_password
from rig_syslog import SyslogSink, SyslogUnavailable, dev_log_argv, isolation_problem, own_dev_log
from rig_tree import (
    DISPATCHER,
    PAM_TYPE_OF,
    PHASE_NAMES,
    PHASES,
    REPO,
    Record,
    clear_hooks,
    default_python,
    make_root,
    mkdirs,
    phase_dir,
    read_records,
    recorder_hook,
    wait_for,
    write_config,
    write_hook,
)
from rig_users import User, temp_user

__all__ = [
    "DISPATCHER",
    "LIBDIR",
    "PAMTESTER_OPS",
    "PAM_D",
    "PAM_MATRIX",
    "PAM_TYPE_OF",
    "PAM_WRAPPER_LIB",
    "PHASES",
    "PHASE_NAMES",
    "REPO",
    "SERVICE_PREFIX",
    "Controls",
    "Outcome",
    "PyPamResult",
    "Record",
    "RigTimeout",
    "Sshd",
    "SyslogSink",
    "SyslogUnavailable",
    "User",
    "clear_hooks",
    "debian_stack_with",
    "default_python",
    "dev_log_argv",
    "dispatcher_argv",
    "exec_line",
    "free_port",
    "install_key",
    "isolation_problem",
    "kill_tree",
    "make_root",
    "matrix_service",
    "mkdirs",
    "own_dev_log",
    "pam_service",
    "pamtester",
    "phase_dir",
    "python_pam",
    "read_records",
    "recorder_hook",
    "run",
    "run_pam",
    "ssh_key",
    "ssh_password",
    "su",
    "sweep_pam_wrapper_dirs",
    "temp_user",
    "unix_service",
    "wait_for",
    "wrapper_env",
    "write_config",
    "write_hook",
    "write_passdb",
    "write_wrapper_service",
]
