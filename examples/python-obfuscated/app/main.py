"""licensed-tool: a command-line tool shipped to customers, as clear source or compiled only.

The build arg SRC_FORMAT decides which: `clear` copies the .py files, `obfuscated` ships only
their bytecode (.pyc), made in a builder stage and copied from there."""
import os
import sys

from fastsum import total
from greet import hello

from app import licence


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    customer = os.environ.get("CUSTOMER", "acme")
    key = argv[0] if argv else licence.key_for(customer)
    if not licence.is_valid(customer, key):
        print(f"invalid licence key for {customer}", file=sys.stderr)
        return 1
    form = "compiled" if __spec__ is not None and __spec__.origin.endswith(".pyc") else "source"
    print(f"{hello(customer)} | licensed | sum: {total(range(1, 1001))} | running from {form}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
