"""A tiny web app: answers every GET with the project's name."""

import http.server
import os

PORT = int(os.environ.get("CODER_PARAM_PORT", "8000"))
PROJECT = os.environ.get("CODER_PARAM_PROJECT", "demo")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"Hello from {PROJECT}!\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
