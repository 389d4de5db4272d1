#!/bin/sh
# /usr/sbin/hookrunner: the same isolated interpreter and entry file the PAM lines use.
exec /usr/bin/python3 -I -S /usr/lib/python3/dist-packages/hookrunner/__main__.py "$@"
