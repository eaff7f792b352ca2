"""A real NATS JetStream server (Debian's nats-server) as a test child: a free loopback port,
its store in a folder of the test, stopped (or SIGKILLed) by the pid the test started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
TTL = 2.0  # replica reports expire after this, here; 10 s by default


class Broker:
    """nats-server -js on 127.0.0.1:PORT with its store in a folder; restartable, same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port, self.starts = folder, free_port(), 0
        self.url = f"nats://127.0.0.1:{self.port}"
        self.server: ServerProcess | None = None

    def start(self, timeout: float = 10) -> None:
        if not Path(NATS_SERVER).exists():  # a failure, not a skip: the tests need the broker
            pytest.fail("nats-server missing: `make debian` installs it (apt-get, as root)")
        self.starts += 1
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        command += ["-js", "-sd", str(self.folder / "store")]
        log = self.folder / f"nats-{self.starts}.log"
        self.server = ServerProcess(command, log, dict(os.environ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.server.proc.poll() is None, self.server.output()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(
            f"nats-server not accepting after {timeout} s:\n{self.server.output()}"
        )

    def kill(self) -> None:
        """SIGKILL the server we started (its process group: the pid is ours)."""
        assert self.server is not None
        if self.server.proc.poll() is None:
            os.killpg(self.server.proc.pid, signal.SIGKILL)
            self.server.proc.wait(timeout=10)
        self.server.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
