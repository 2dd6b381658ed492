from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")


def run(port: int = 8000) -> None:
    HTTPServer(("", port), Handler).serve_forever()


if __name__ == "__main__":
    run()
