"""The service's supervision: a killed worker comes back at once; a refused model ends the server.

BentoML 1.4 supervises its workers with circus, and `create_standalone_arbiter` hard-codes the
arbiter's `check_delay` to 10 s (bentoml/_internal/utils/circus/__init__.py): a worker killed
by the OOM killer or `kill -9` is noticed only at the next check, up to 10 s later, and new
requests hang on the listening socket meanwhile (measured: 18 s until traffic was back). The
check itself is cheap (reap exited children, count the processes), so `install()` makes it run
every `CHECK_DELAY_S`. It swaps the arbiter class by module attribute (BentoML looks it up when
`serve` creates the arbiter, after it imported this service) and checks the BentoML version it
was written for, as `app_production.timeouts` does.

Even then a new worker needs 2-6 s to start, so there are two workers and only one serves
(`ServingLock`): the other waits, loaded, and takes over the moment the serving one dies
(measured: traffic back 0.3 s after a kill -9, against 5.6 s with the quick check alone and
18 s before). Two workers that both serve would each follow `kit publish` on their own, and a
caller's requests could alternate between versions during a switch; the publish promise is
that every request after the switch sees the new version.

`refuse_to_serve(reason)`: a worker that cannot load its model would otherwise fail and be
restarted forever, the server looking alive. It writes the reason where `kit serve` looks for it
(KIT_REFUSAL_FILE) and asks its supervisor to stop: the whole server exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

WRITTEN_FOR = "1.4.39"
CHECK_DELAY_S = 0.5
BENTOML_CHECK_DELAY_S = 10  # what BentoML hard-codes (the test checks it still does)
REFUSAL_FILE_ENV = "KIT_REFUSAL_FILE"
REFUSED_EXIT_CODE = 3  # as the kit's own "this artifact cannot be used" (ArtifactError)
replaced: Any = None  # BentoML's arbiter class, once `install()` swapped it out


def install() -> None:
    """Check the workers every CHECK_DELAY_S (call before `bentoml serve` creates its arbiter)."""
    from bentoml._internal.utils import circus as bentoml_circus

    installed = version("bentoml")
    if installed != WRITTEN_FOR:
        raise RuntimeError(
            f"app_production/supervision.py was written for bentoml {WRITTEN_FOR}, not "
            f"{installed}: check how often its arbiter checks its workers (check_delay in "
            "bentoml/_internal/utils/circus/__init__.py), then update WRITTEN_FOR"
        )
    module: Any = bentoml_circus
    if getattr(module.Arbiter, "kit_check_delay", None) is not None:
        return  # installed already
    global replaced
    replaced = module.Arbiter

    class QuickCheckArbiter(replaced):  # type: ignore[misc]
        kit_check_delay = CHECK_DELAY_S

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # __init__ built the controller with BentoML's 10 s; it reads it again at start
            self.check_delay = CHECK_DELAY_S
            self.ctrl.check_delay = CHECK_DELAY_S * 1000  # circus keeps milliseconds
            self.exit_stack.callback(lock_path(os.getpid()).unlink, missing_ok=True)

        def start(self, cb: Any = None) -> None:
            super().start(cb)  # returns when the server stopped
            marker = refusal_path(os.getpid())
            if marker.exists():  # a worker refused its model: `bentoml serve` fails, too
                marker.unlink(missing_ok=True)
                raise SystemExit(REFUSED_EXIT_CODE)

    module.Arbiter = QuickCheckArbiter


def lock_path(supervisor: int) -> Path:
    """The serving lock of the server whose supervisor is `supervisor` (removed at its exit)."""
    return Path(tempfile.gettempdir()) / f"kit-serving-{supervisor}.lock"


def refusal_path(supervisor: int) -> Path:
    """Where a worker tells its supervisor it refused its model (read at the server's exit)."""
    return Path(tempfile.gettempdir()) / f"kit-refused-{supervisor}.txt"


def refuse_to_serve(reason: str) -> None:
    """The worker cannot serve its model: say why, and stop the whole server (not a restart)."""
    print(f"kit: the service refuses to start: {reason}", file=sys.stderr, flush=True)
    if target := os.environ.get(REFUSAL_FILE_ENV):
        with contextlib.suppress(OSError):
            Path(target).write_text(reason + "\n")
    supervisor = _supervisor()
    if supervisor is not None:
        with contextlib.suppress(OSError):
            refusal_path(supervisor).write_text(reason + "\n")
        os.kill(supervisor, signal.SIGTERM)  # circus stops every worker, then exits non-zero


def _supervisor() -> int | None:
    """The `bentoml serve` process that started this worker (never anything else)."""
    import psutil

    parent = os.getppid()
    try:
        command = " ".join(psutil.Process(parent).cmdline())
    except psutil.Error:
        return None
    return parent if "bentoml" in command and "serve" in command else None


class ServingLock:
    """One worker serves, the other waits ready behind it (a hot standby).

    Both workers start and load the model; the one holding an exclusive `flock` on the server's
    lock file serves, the other waits in its startup (so it accepts no connection) until the
    lock is free: the kernel frees it the moment the serving worker dies, however it dies, and
    the standby takes over within `POLL_S`. Only one worker answers at any time, so a publish
    switches every caller at once. BentoML then starts a new standby.
    """

    POLL_S = 0.02

    def __init__(self, path: Path | None = None) -> None:
        self.supervisor = os.getppid()
        self.path = path or lock_path(self.supervisor)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+")  # kept open: the lock lives as long as this process

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def wait(self) -> None:
        """Block until this worker may serve; exit quietly if told to stop meanwhile, or if
        the supervisor is gone (nothing would ever send this standby a request)."""
        stopping: list[int] = []
        previous = {
            signum: signal.signal(signum, lambda signum, _frame: stopping.append(signum))
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            print(f"standby worker {os.getpid()}: serves if the serving one dies", flush=True)
            while not self.try_acquire():
                if stopping or os.getppid() != self.supervisor:
                    os._exit(0)  # nothing served yet: nothing to finish
                time.sleep(self.POLL_S)
            print(f"worker {os.getpid()} now serves", flush=True)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
