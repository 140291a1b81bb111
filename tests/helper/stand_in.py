"""A small HTTP server that answers each request with a function of it: for the
AWS answers moto cannot give (an expired token, a bare 400 on HEAD, the Price
List API), sent over real HTTP to botocore's own clients."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Mapping, Tuple

Reply = Tuple[int, Dict[str, str], bytes]


class StandIn:
    """Each request is recorded as (method, path, body, headers) and answered
    with `route(method, path + "?" + body, headers)`."""

    def __init__(self, route: Callable[[str, str, Mapping[str, str]], Reply]):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                outer.requests.append((self.command, self.path, body, headers))
                status, reply_headers, payload = route(self.command, self.path + "?" + body.decode("utf-8", "replace"),
                                                       headers)
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
