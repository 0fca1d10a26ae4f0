"""microblog: a tiny blog kept in a JSON file in the user's home, written as the unprivileged user
the image runs as. `python3 -m microblog post TEXT`, `python3 -m microblog list`, `... whoami`."""
import getpass
import json
import os
import sys
import time

from fastsum import total
from greet import hello

STORE = os.path.join(os.path.expanduser("~"), "posts.json")


def load():
    try:
        with open(STORE) as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def save(posts):
    tmp = STORE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(posts, f)
    os.replace(tmp, STORE)


def main(argv):
    cmd = argv[0] if argv else "demo"
    if cmd == "post":
        posts = load() + [{"at": int(time.time()), "text": " ".join(argv[1:])}]
        save(posts)
        print(f"posted #{len(posts)}")
    elif cmd == "list":
        for i, p in enumerate(load(), 1):
            print(f"#{i} {p['text']}")
    elif cmd == "whoami":
        print(f"{getpass.getuser()} uid={os.getuid()} home={os.path.expanduser('~')} context={os.environ.get('CONTEXT')}")
    elif cmd == "demo":
        save(load() + [{"at": int(time.time()), "text": hello("microblog")}])
        words = sum(len(p["text"].split()) for p in load())
        print(f"{hello('microblog')} | {len(load())} post(s), {total([words])} words | "
              f"user {getpass.getuser()} ({os.getuid()}) | CONTEXT={os.environ.get('CONTEXT')}")
    else:
        print(f"unknown command {cmd}: use post TEXT, list, whoami", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
