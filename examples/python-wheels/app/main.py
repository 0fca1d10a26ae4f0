"""sumup: adds numbers with fastsum, a C extension — the kind of dependency that needs a compiler
to install, which is why the Dockerfile builds wheels in a builder stage."""
import argparse
import platform
import sys

import fastsum._csum
from fastsum import total
from greet import hello


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sumup", description="add integers in C")
    parser.add_argument("numbers", nargs="*", type=int, help="numbers to add (default: 1..1000)")
    args = parser.parse_args(argv)
    numbers = args.numbers or range(1, 1001)
    ext = fastsum._csum.__file__.rsplit("/", 1)[-1]
    print(f"{hello('python-wheels')} | sum: {total(numbers)} | python {platform.python_version()}, C extension {ext}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
