"""Not hookrunner; the floor: the cheapest conceivable Python program doing a dispatcher's job.

The benchmarks show it next to the real dispatcher, as the floor any Python dispatcher could
reach; both modes run as ``python3 -I -S`` (as the PAM lines run hookrunner) and import only
what the job needs.

``python3 -I -S floor.py PHASE ROOT``
    Not hookrunner; the floor of ``hookrunner run PHASE --root ROOT`` over executables. The
    same system calls as hookrunner's run (the four layer scans, the config file's existence,
    the site directories' times for the entry-point cache key, reading the plain-text
    entry-point cache ``ROOT/var/cache/hookrunner/entry_points``), with nothing but ``os`` and
    ``site`` imported; then it runs every regular executable file of the first layer's
    directory ``ROOT/etc/security/PHASE.d``, sorted by name, one after the other: argv
    ``[path]``, ``os.posix_spawn`` with a minimal environment (``PAM_USER``, ``PAM_SERVICE``,
    ``PAM_RHOST``, ``PAM_TYPE`` from its own, if set, and ``PATH=/usr/bin:/bin``), waited for
    with ``os.waitpid``. Exit status 1 if any hook fails, else 0. No config, no safety rules
    beyond "regular file with an execute bit", no timeouts, no logging. B1 runs it over empty
    directories, B4 from ``pam_exec.so`` once per phase.

``python3 -I -S floor.py --plugins PHASE ROOT``
    Not hookrunner; the floor of its plugin path. Every ``*.py`` file of
    ``ROOT/etc/security/PHASE.d`` (sorted by name) is compiled and executed as a module,
    registered with a ``pluggy.PluginManager("hookrunner")`` that knows one hookspec,
    ``PHASE(ctx)``, and the hook is called once with a tiny ``ctx`` that carries ``.user`` and
    ``.rhost`` (``PAM_USER``, ``PAM_RHOST``). The plugin files do ``import hookrunner`` and
    use ``@hookrunner.hookimpl``: a stand-in module ``hookrunner`` in ``sys.modules`` holds
    ``hookimpl = pluggy.HookimplMarker("hookrunner")``, so the very files hookrunner runs work
    unchanged. As in hookrunner, pluggy is imported only if there is a plugin file (a
    directory without one costs a scan), from the interpreter's site directories (``-S``
    leaves them off ``sys.path``), and without ``importlib.metadata``, which pluggy 1.0
    imports for ``load_setuptools_entrypoints`` alone (never called here). No isolation,
    threads or timeouts: one ``pm.hook.PHASE(ctx=...)`` call (plugins registered in reverse,
    so that pluggy's last-registered-first order runs them by name). B3 runs it over the
    plugin trees.
"""

import os
import site
import sys

LAYERS = ("etc/security", "run/hookrunner", "usr/local/lib/hookrunner", "usr/lib/hookrunner")
PASS_ENV = ("PAM_USER", "PAM_SERVICE", "PAM_RHOST", "PAM_TYPE")


def main(phase: str, root: str) -> int:
    """The floor of ``hookrunner run PHASE --root ROOT``: 0, or 1 if a hook failed."""
    hooks: list[str] = []
    for layer in LAYERS:  # all four are scanned, as hookrunner does; the first one is run
        try:
            with os.scandir(os.path.join(root, layer, f"{phase}.d")) as scan:
                entries = list(scan)
        except FileNotFoundError:
            continue
        if layer == LAYERS[0]:
            hooks = sorted(e.path for e in entries if e.is_file() and e.stat().st_mode & 0o111)
    os.path.lexists(os.path.join(root, "etc/security/hookrunner.toml"))
    for directory in [*site.getsitepackages(), *sys.path[1:]]:
        try:
            os.stat(directory)
        except OSError:
            pass
    try:
        fd = os.open(os.path.join(root, "var/cache/hookrunner/entry_points"), os.O_RDONLY)
    except OSError:
        pass
    else:
        try:
            os.fstat(fd)
            os.read(fd, 1 << 20)
        finally:
            os.close(fd)
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env["PATH"] = "/usr/bin:/bin"
    failed = False
    for path in hooks:
        pid = os.posix_spawn(path, [path], env)
        _, status = os.waitpid(pid, 0)
        failed = failed or status != 0
    return 1 if failed else 0


# The --plugins mode, as source compiled only when it runs: Python compiles a script (unlike an
# imported module) from its source at every start, and this code, compiled with the rest, would
# add ~0.3 ms (some 4 %) to every run of the first mode, the B1 and B4 floors. exec() of the
# string, not compile(): the builtin compile() first builds Python's AST types, ~1 ms on its
# first call in a process, which only a phase with a plugin (compiling it) should pay.
PLUGINS = '''
class Ctx:
    """The plugins' ``ctx``: only what they use."""

    __slots__ = ("rhost", "user")

    def __init__(self, user: str | None, rhost: str | None) -> None:
        self.user, self.rhost = user, rhost


def plugins(phase: str, root: str) -> int:
    """The floor of hookrunner's plugin path: load and call the ``*.py`` plugins of PHASE.d."""
    directory = os.path.join(root, "etc/security", f"{phase}.d")
    with os.scandir(directory) as entries:
        files = sorted(e.path for e in entries if e.name.endswith(".py") and e.is_file())
    if not files:
        return 0
    for d in site.getsitepackages():
        if d not in sys.path:
            sys.path.append(d)
    stub = type(sys)("importlib.metadata")  # pluggy's `from importlib import metadata`, unused
    sys.modules["importlib.metadata"] = stub
    try:
        import pluggy
    finally:
        if sys.modules.get("importlib.metadata") is stub:
            del sys.modules["importlib.metadata"]

    spec = type(sys)("floor_hookspecs")

    def hook(ctx: Ctx) -> None:
        """The one hookspec, named PHASE."""

    hook.__name__ = hook.__qualname__ = phase
    setattr(spec, phase, pluggy.HookspecMarker("hookrunner")(hook))
    stand_in = type(sys)("hookrunner")  # what `import hookrunner` gives the plugin files
    stand_in.hookimpl = pluggy.HookimplMarker("hookrunner")
    sys.modules["hookrunner"] = stand_in
    pm = pluggy.PluginManager("hookrunner")
    pm.add_hookspecs(spec)
    for path in reversed(files):  # pluggy calls the last registered first
        with open(path, "rb") as f:
            source = f.read()
        name = os.path.basename(path)
        module = type(sys)(f"hookrunner_plugin_{name}")
        module.__file__ = path
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
        pm.register(module, name=name)
    getattr(pm.hook, phase)(ctx=Ctx(os.environ.get("PAM_USER"), os.environ.get("PAM_RHOST")))
    return 0
'''


if __name__ == "__main__":
    if sys.argv[1] == "--plugins":
        exec(PLUGINS, globals())
        sys.exit(globals()["plugins"](sys.argv[2], sys.argv[3]))
    sys.exit(main(sys.argv[1], sys.argv[2]))
