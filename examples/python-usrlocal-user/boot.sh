#!/bin/sh
# As seed 003's microblog: the container starts the app from its home directory.
exec python3 -m microblog "$@"
