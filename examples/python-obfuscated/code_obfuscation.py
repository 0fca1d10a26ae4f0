#!/usr/bin/env python3
"""Offline stand-in for seed 000's Nuitka step: compile every module of the app to bytecode next to
its source (legacy .pyc layout, which Python imports without the source), then delete the sources.
Nuitka would produce native extension modules instead; the Dockerfile's shape is the same."""
import compileall
import pathlib
import sys

if not compileall.compile_dir("app", legacy=True, quiet=1):
    sys.exit("compileall failed")
removed = 0
for src in pathlib.Path("app").rglob("*.py"):
    src.unlink()
    removed += 1
for cache in pathlib.Path("app").rglob("__pycache__"):
    for f in cache.iterdir():
        f.unlink()
    cache.rmdir()
print(f"compiled the app: {removed} sources replaced by .pyc")
