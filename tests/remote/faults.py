"""Misbehaving endpoints on loopback: a port nobody listens on, a server that stalls, one that talks junk."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tcp_server(answer: bytes | Callable[[bytes], bytes] | None) -> Iterator[int]:
    """Accept connections on a free port; reply `answer` to each request (or what `answer(request)` gives),
    or never reply (None = stall).

    It stops by itself when the block ends: the listening socket and every accepted one are closed.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(conn)
            if answer is not None:
                with contextlib.suppress(OSError):
                    conn.settimeout(2)
                    request = conn.recv(65536)
                    conn.sendall(answer(request) if callable(answer) else answer)
                    conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for conn in accepted:
            with contextlib.suppress(OSError):
                conn.close()


JUNK_NOT_HTTP = b"\x00\x01this is not HTTP at all\r\n\r\n"
JUNK_HTML_200 = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 25\r\n\r\n<html>captive portal</html"
JUNK_500 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"


class Proxy:
    """A TCP proxy on loopback in front of `target_port`: it can stall each new connection, add a latency to
    each request (one round trip: the first bytes a client sends after an answer wait that long), cap the
    bandwidth of both directions together (one link for every connection, as an agent's uplink is), and
    counts the bytes it moved each way. Stops by itself when the block ends."""

    def __init__(self, target_port: int, *, stall: float = 0.0, bandwidth: int | None = None,
                 latency: float = 0.0, blob_fault: str | None = None) -> None:
        self.target_port = target_port
        # "503": every GET of a blob answers 503 (the store failing); "truncate": its answer stops midway.
        self.blob_fault = blob_fault
        self.faults = 0
        self.stall = stall
        self.bandwidth = bandwidth
        self.latency = latency
        self.requests = 0  # client sends that followed an answer (or opened a connection)
        self.upstream_bytes = 0  # client -> server (requests, uploads)
        self.downstream_bytes = 0  # server -> client (answers, downloads)
        self.connections = 0
        self._lock = threading.Lock()
        self._next_send = 0.0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _book(self, nbytes: int) -> None:
        """Wait for the shared link to carry `nbytes`."""
        if not self.bandwidth:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_send)
            self._next_send = start + nbytes / self.bandwidth
            wait = self._next_send - now
        if wait > 0:
            self._stop.wait(wait)

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool, state: dict[str, Any]) -> None:
        """Move bytes one way; `state["turn"]` says the client's next bytes start a request, `state["blob"]`
        that the request being answered is the GET of a blob."""
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                data = src.recv(16384)
                if not data:
                    break
                if upstream and state["turn"]:
                    state.update(turn=False, answered=0, blob=data.startswith(b"GET ") and
                                 b"/ci-cache-v1/blobs/" in data.split(b"\r\n", 1)[0])
                    with self._lock:
                        self.requests += 1
                    if self.latency:
                        self._stop.wait(self.latency)
                    if state["blob"] and self.blob_fault == "503":
                        self.faults += 1
                        src.sendall(JUNK_500)
                        state["turn"] = True
                        continue
                elif not upstream:
                    state["turn"] = True
                    if state["blob"] and self.blob_fault == "truncate":
                        state["answered"] += len(data)
                        if state["answered"] > 1024:  # the headers and a little of the body, then nothing
                            self.faults += 1
                            dst.sendall(data[:1024 - state["answered"] + len(data)])
                            break
                self._book(len(data))
                dst.sendall(data)
                with self._lock:
                    if upstream:
                        self.upstream_bytes += len(data)
                    else:
                        self.downstream_bytes += len(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _serve(self, client: socket.socket) -> None:
        if self.stall and self._stop.wait(self.stall):
            client.close()
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._sockets.append(server)
        state: dict[str, Any] = {"turn": True, "blob": False, "answered": 0}
        pumps = [threading.Thread(target=self._pump, args=(client, server, True, state), daemon=True),
                 threading.Thread(target=self._pump, args=(server, client, False, state), daemon=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            self.connections += 1
            self._sockets.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def __enter__(self) -> Proxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
