"""What an import-light `hookrunner run PHASE --root DIR` over empty directories would cost.

Not hookrunner: the same system calls as its empty run (the four layer scans, the config
file's existence, the site directories' times for the entry-point cache key, reading the
cache) with nothing but ``os`` and ``site`` imported. B1 shows it next to the real dispatcher,
as the floor a Python dispatcher could reach. Usage: ``python3 -I -S floor.py PHASE DIR``.
"""

import os
import site
import sys

LAYERS = ("etc/security", "run/hookrunner", "usr/local/lib/hookrunner", "usr/lib/hookrunner")


def main(phase: str, root: str) -> int:
    found = 0
    for layer in LAYERS:
        try:
            with os.scandir(os.path.join(root, layer, f"{phase}.d")) as entries:
                found += sum(1 for _ in entries)
        except FileNotFoundError:
            pass
    os.path.lexists(os.path.join(root, "etc/security/hookrunner.toml"))
    for directory in [*site.getsitepackages(), *sys.path[1:]]:
        try:
            os.stat(directory)
        except OSError:
            pass
    try:
        fd = os.open(os.path.join(root, "var/cache/hookrunner/entry_points.json"), os.O_RDONLY)
    except OSError:
        return found
    try:
        os.fstat(fd)
        os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    return found


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
