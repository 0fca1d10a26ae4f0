"""A small web app: one page with a figure computed by a C extension, plus static assets that a
node stage minified at build time. `--check` renders the page once and exits (used by the demo)."""
import os
import sys
from http.server import HTTPServer, SimpleHTTPRequestHandler

from fastsum import total
from greet import hello

STATIC = os.environ.get("STATIC_DIR", "/app/static_final")


def page():
    assets = sorted(os.listdir(STATIC))
    links = "".join(f'<link rel="stylesheet" href="/static/{a}">' for a in assets if a.endswith(".css"))
    scripts = "".join(f'<script src="/static/{a}"></script>' for a in assets if a.endswith(".js"))
    return (f"<!doctype html><title>venv demo</title>{links}<main class=main><h1>{hello('python-venv')}</h1>"
            f"<p>sum of 1..1000 = {total(range(1, 1001))}</p></main>{scripts}")


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=STATIC, **kw)

    def do_GET(self):
        if self.path.startswith("/static/"):
            self.path = self.path[len("/static"):]
            return super().do_GET()
        body = page().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--check" in argv:
        html = page()
        print(html)
        print(f"ok: {len(os.listdir(STATIC))} static assets", file=sys.stderr)
        return 0
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on :{port}")
    HTTPServer(("", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
