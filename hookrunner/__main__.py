# Run as `python3 -I -S /path/to/hookrunner/__main__.py run` (what PAM lines use): isolated mode
# puts nothing on sys.path, so the directory that holds the package goes there, and only it.
if not __package__:
    import os.path
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from hookrunner.cli import main

raise SystemExit(main())
