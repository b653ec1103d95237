"""`IndexServer`: serve a built index on 127.0.0.1 from a daemon thread, recording what was requested."""

from __future__ import annotations

import os
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from ci_cache_index.network import Link, NetworkProfile, ThrottledWriter, sleep_until

# socketserver's default listen backlog of 5 drops connections when 8 uv processes (up to 50
# connections each) start at once, and each dropped SYN costs the client 1, 3, 7... s of retransmits.
LISTEN_BACKLOG = 1024


class _Handler(SimpleHTTPRequestHandler):
    server: _IndexHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real indexes do

    def setup(self) -> None:
        super().setup()
        link = self.server.owner.link
        if link is not None:
            self.wfile = ThrottledWriter(self.wfile, link)

    def translate_path(self, path: str) -> str:
        # Serve a folder's index.html directly, so /simple/x and /simple/x/ both answer 200 (no redirect).
        fs_path = super().translate_path(path)
        index = os.path.join(fs_path, "index.html")
        return index if os.path.isdir(fs_path) and os.path.isfile(index) else fs_path

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def end_headers(self) -> None:
        # Cache headers as PyPI sends them: distributions are immutable, project pages expire after
        # `simple_max_age` seconds (0 makes uv revalidate them on every run, with If-Modified-Since).
        if getattr(self, "_status", 0) in (200, 304):
            if urlsplit(self.path).path.startswith("/files/"):
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
            else:
                age = self.server.owner.simple_max_age
                self.send_header("Cache-Control", f"max-age={age}, public" if age else "max-age=0, must-revalidate")
        super().end_headers()

    def _arrived(self) -> None:
        owner = self.server.owner
        owner._record(self.path)
        if owner.network.latency > 0:
            sleep_until(time.perf_counter() + owner.network.latency)

    def do_GET(self) -> None:
        self._arrived()
        super().do_GET()

    def do_HEAD(self) -> None:
        self._arrived()
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: requests are recorded in IndexServer.requests / the access log


class _IndexHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    owner: IndexServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-response are routine; don't spray tracebacks on stderr


class IndexServer:
    """Serve ``root`` (as built by `build_index`) on 127.0.0.1 from a daemon thread.

    ``network`` slows every response down to a profile (see `NetworkProfile`); the default is loopback.
    """

    def __init__(
        self,
        root: Path,
        *,
        access_log: Path | None = None,
        port: int = 0,
        simple_max_age: int = 600,
        network: NetworkProfile | None = None,
    ) -> None:
        self.root = Path(root)
        self.simple_max_age = simple_max_age
        self.access_log = access_log
        self.network = network or NetworkProfile()
        # One link for all connections: the bandwidth cap is shared (see ci_cache_index.network).
        self.link = Link(self.network.bandwidth) if self.network.bandwidth is not None else None
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[str] = []
        self._httpd: _IndexHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("IndexServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The simple-index URL, e.g. ``http://127.0.0.1:PORT/simple``."""
        return f"http://127.0.0.1:{self.port}/simple"

    @property
    def requests(self) -> list[str]:
        """Paths requested so far (URL-decoded, without query), in order; a snapshot copy."""
        with self._lock:
            return list(self._requests)

    def file_downloads(self) -> list[str]:
        """Requested paths under ``/files/`` (distributions and their .metadata files)."""
        return [p for p in self.requests if p.startswith("/files/")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, raw_path: str) -> None:
        path = unquote(urlsplit(raw_path).path)
        with self._lock:
            self._requests.append(path)
            if self.access_log is not None:
                with open(self.access_log, "a", encoding="utf-8") as f:
                    f.write(path + "\n")

    def start(self) -> IndexServer:
        if self._httpd is not None:
            return self
        root = str(self.root)

        class Handler(_Handler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=root, **kwargs)

        httpd = _IndexHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="ci-cache-index", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
