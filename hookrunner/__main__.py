# Run as `python3 -I -S /path/to/hookrunner/__main__.py run` (what PAM lines use): isolated mode
# puts nothing on sys.path, so the directory that holds the package goes there, and only it.
import sys

if not __package__:
    import os.path

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _main() -> int:
    try:
        from hookrunner.privileges import become_root

        become_root()  # before anything else: su, passwd & co. start us with the caller's uid
        from hookrunner.quick import main as quick

        status = quick(sys.argv[1:])  # a phase with nothing to run: answered in a few imports
    except Exception:
        status = None
    if status is None:  # also when become_root failed: main() says why, exits 3
        from hookrunner.cli import main

        status = main()
    return status


raise SystemExit(_main())
