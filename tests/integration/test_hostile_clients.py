"""Big and slow bodies while a normal caller keeps calling: it is served, and memory stays flat.

Against the promoted service, with one `RemotePredictor` calling in a loop all along: ten
slow-loris clients (headers one byte a second, held open), a 50 MB body, a million records and
50 MB chunked without a Content-Length, each really sent. Each must be refused (413) before the
service reads it; the service's memory may not grow; the normal caller fails nothing and never
waits past its timeout. Figures: test-output/reliability/hostile_clients.json.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psutil
import pytest

from app_production.client import RemotePredictor
from tests.helpers import GENTOO, Promoted, write_figures

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

SLOW_CLIENTS = 10
CALLER_TIMEOUT_S = 10.0
MB = 1 << 20


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _head(url: str, **headers: str) -> bytes:
    host, port = _address(url)
    lines = ["POST /predict HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _send_while_reading(url: str, head: bytes, body: Iterator[bytes]) -> tuple[int, float, int]:
    """Send head + body on one thread while reading the answer on this one (a server that
    answers early closes the connection: a client that only reads after sending would see a
    reset, not the answer). (status, seconds until the status line, bytes sent by then)."""
    sent = [0]
    with socket.create_connection(_address(url), timeout=60) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server may stop reading: expected
                sock.sendall(head)
                for chunk in body:
                    sock.sendall(chunk)
                    sent[0] += len(chunk)

        started = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        seconds, sent_by_then = time.monotonic() - started, sent[0]
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    return int(answer.split(b" ", 2)[1]), seconds, sent_by_then


def _pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _chunked(data: bytes) -> Iterator[bytes]:
    for piece in _pieces(data, 64 * 1024):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def _service_rss_mb(promoted: Promoted) -> float:
    service_id = json.loads((promoted.home / "state.json").read_text())["service_id"]
    total = 0
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid == promoted.pid or process.environ().get("KIT_SERVICE_ID") == service_id:
                total += process.memory_info().rss
    return total / MB


class SlowLoris:
    """Clients that send a request's headers one byte a second and never finish them."""

    def __init__(self, url: str, count: int) -> None:
        self.head = _head(url, **{"Content-Type": "application/json", "Content-Length": "100"})
        self.sockets = [socket.create_connection(_address(url), timeout=5) for _ in range(count)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        for byte in self.head[:-4]:  # never the blank line that ends the headers
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(bytes([byte]))
            if self.stop.wait(1.0):
                return

    def still_open(self) -> int:
        """How many the server still holds (a closed one reads as end-of-file)."""
        alive = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1  # nothing to read: still open
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return alive

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


class SteadyCaller:
    """One RemotePredictor calling in a loop, as the UI would for a tester, without retries."""

    def __init__(self, url: str) -> None:
        self.client = RemotePredictor(url, retries=0, timeout=(3.05, CALLER_TIMEOUT_S))
        self.calls, self.longest_s = 0, 0.0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                assert self.client.predict([GENTOO])[0].label == "Gentoo"
            except Exception as exc:  # counted: the figures are the point
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            self.longest_s = max(self.longest_s, time.monotonic() - started)
            self.calls += 1
            self.stop.wait(0.02)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(CALLER_TIMEOUT_S + 5)
        self.client.close()


def test_big_and_slow_bodies_are_refused_while_a_normal_caller_is_served(
    promoted: Promoted,
) -> None:
    url = promoted.url
    record = json.dumps(GENTOO).encode()
    fifty_mb = b'{"records": [' + b",".join([record] * (50 * MB // len(record))) + b"]}"
    million = b'{"records": [' + b",".join([record] * 1_000_000) + b"]}"
    cases = {  # name: (headers, body, what is really sent)
        "50_mb": ({"Content-Length": str(len(fifty_mb))}, fifty_mb, _pieces(fifty_mb)),
        "million_records": ({"Content-Length": str(len(million))}, million, _pieces(million)),
        "50_mb_chunked": ({"Transfer-Encoding": "chunked"}, fifty_mb, _chunked(fifty_mb)),
    }
    statuses: dict[str, int] = {}
    figures: dict[str, object] = {}
    caller = SteadyCaller(url)
    loris = SlowLoris(url, SLOW_CLIENTS)
    try:
        time.sleep(1.0)  # the caller is in its loop, the slow clients are connected
        rss_before = _service_rss_mb(promoted)
        for name, (headers, data, sent_as) in cases.items():
            head = _head(url, **{"Content-Type": "application/json", **headers})
            statuses[name], seconds, sent = _send_while_reading(url, head, sent_as)
            figures[name] = {
                "status": statuses[name],
                "answered_in_ms": round(seconds * 1000, 1),
                "body_mb": round(len(data) / MB),
                "sent_before_the_answer_mb": round(sent / MB, 1),
            }
        time.sleep(2.0)  # the slow clients keep dripping; the caller keeps calling
        rss_after = _service_rss_mb(promoted)
        slow_open = loris.still_open()
    finally:
        loris.close()
        caller.close()
    figures.update(
        slow_loris_clients=SLOW_CLIENTS,
        slow_loris_still_held=slow_open,
        normal_caller_calls=caller.calls,
        normal_caller_failed=len(caller.failures),
        normal_caller_longest_ms=round(caller.longest_s * 1000, 1),
        normal_caller_timeout_s=CALLER_TIMEOUT_S,
        service_rss_before_mb=round(rss_before),
        service_rss_after_mb=round(rss_after),
    )
    write_figures("hostile_clients", figures)
    assert statuses == dict.fromkeys(cases, 413), figures
    assert not caller.failures, caller.failures
    assert caller.calls > 10 and caller.longest_s < CALLER_TIMEOUT_S, figures
    assert rss_after < rss_before * 1.05, figures  # nothing of the big bodies was kept
