"""A local HTTP server on 127.0.0.1 for the acquisition tests: serves bytes by name, optionally behind Basic auth."""

from __future__ import annotations

import base64
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server holds and saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    credentials: tuple[str, str] | None = None  # (user, password) required when set
    requests: list[str] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    base: str = ""


def _handler(state: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            name = self.path.split("?")[0].lstrip("/")
            state.requests.append(name)
            auth = self.headers.get("Authorization")
            state.auth_headers.append(auth)
            if state.credentials is not None:
                token = base64.b64encode(":".join(state.credentials).encode()).decode()
                if auth != f"Basic {token}":
                    self.send_error(401)
                    return
            if name not in state.files:
                self.send_error(404)
                return
            data = state.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(state: Served) -> Iterator[Served]:
    """Run the server while the block runs; ``state.base`` is its URL (``http://127.0.0.1:<port>``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive holding ``members`` (name -> content)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
