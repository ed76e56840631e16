"""`accord serve`'s webhook dispatcher in a child process of its own (PostgreSQL).

Inside an API worker the dispatcher shares the worker's interpreter lock and event
loop, and costs it several milliseconds of CPU per event (bench/events.py). So on
PostgreSQL (ACCORD_WEBHOOK_DISPATCH_PROCESS=auto or on) `accord serve` starts ONE
child running `accord dispatch` beside its worker(s), and the workers start no
dispatcher of their own (ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false in the environment
they read; the child gets the original one). The child serves its metrics on a
loopback port chosen once (`--metrics-port`, the same for every child started
again), which the workers read as ACCORD_WEBHOOK_DISPATCH_METRICS_URL and merge
into their `/metrics` (service/web/dispatcher_metrics.py). Several dispatchers on one PostgreSQL
are safe (claims.py), and the child hears the workers' commits by LISTEN/NOTIFY
(listen.py). The child and the workers may migrate at the same time: migrations
hold an advisory lock (service/db/migrate.py), and whoever comes second finds the
schema at head.

Supervision (a thread of the serve process, so it runs beside uvicorn or
serving.serve_workers alike):

- a child that exits non-zero within its first seconds on its first start failed
  to start (invalid settings, no keys, a migration that fails): `accord serve`
  stops its workers and exits with that code, as it does for a worker that fails
  to start (SECURITY-TESTS H09: fail closed, never a loop of restarts);
- a child that exits later (or is killed) is started again after a backoff (1 s,
  doubled while it keeps exiting quickly, at most 30 s), each exit logged with its
  code; meanwhile its claimed deliveries are due again after their lease, and
  events committed meanwhile wait in the database for the next dispatcher;
- on SIGINT or SIGTERM of `accord serve`, once the workers have stopped, the child
  gets SIGTERM (it stops between two database operations) and is waited for (at
  most 30 s, then killed).

The child runs in a session of its own, so that a terminal's Ctrl-C or a signal
to serve's process group reaches serve alone, which stops it in order; and it
watches its parent (`--parent-pid`): if serve dies without stopping it (SIGKILL),
it stops by itself within a second. Its logs go to serve's stderr, JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Final

from service.settings import Settings

log = logging.getLogger("accord.events.dispatch_process")

IN_SERVE_VARIABLE: Final = "ACCORD_WEBHOOK_DISPATCH_IN_SERVE"
METRICS_URL_VARIABLE: Final = "ACCORD_WEBHOOK_DISPATCH_METRICS_URL"
# A child that exits sooner than this after its first start did not start.
START_GRACE_SECONDS: Final = 15.0
_FIRST_BACKOFF_SECONDS: Final = 1.0
_MOST_BACKOFF_SECONDS: Final = 30.0
_STOP_TIMEOUT_SECONDS: Final = 30.0
_POLL_SECONDS: Final = 0.2
_PARENT_POLL_SECONDS: Final = 1.0


def sqlite_refusal(settings: Settings) -> str | None:
    """Why `accord serve` must refuse these settings, or None."""
    if settings.webhook_dispatch_process == "on" and settings.is_sqlite:
        return (
            "ACCORD_WEBHOOK_DISPATCH_PROCESS: on needs PostgreSQL (ACCORD_DATABASE_URL); "
            "SQLite is served by one process, which dispatches itself: set auto or off"
        )
    return None


def child_command(parent_pid: int, *, metrics_port: int | None = None) -> list[str]:
    """`accord dispatch` run by this interpreter, as a child of `parent_pid` (serving
    its metrics on 127.0.0.1 at `metrics_port`, if given)."""
    command = [
        sys.executable,
        "-c",
        "from service.cli import main; main()",
        "dispatch",
        "--parent-pid",
        str(parent_pid),
    ]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    return command


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def watch_parent(parent_pid: int, stop: Callable[[], None]) -> None:
    """Call `stop` once this process's parent is no longer `parent_pid` (it died and
    the process was adopted)."""
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event tells of a parent's death
        await asyncio.sleep(_PARENT_POLL_SECONDS)
    log.warning(
        "the serving process is gone; the dispatcher stops",
        extra={"event": "webhook.dispatcher_orphaned"},
    )
    stop()


class _Stopped(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class DispatcherChild:
    """The child process and the thread that supervises it."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        *,
        start_grace: float = START_GRACE_SECONDS,
        on_failed_start: Callable[[], None],
    ) -> None:
        self._command = command
        self._env = dict(env)
        self._start_grace = start_grace
        self._on_failed_start = on_failed_start
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(
            target=self._supervise, name="accord-dispatch-supervisor", daemon=True
        )
        self.failed_start: int | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._process is None else self._process.pid

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> float:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            self._command, env=self._env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        with self._lock:
            self._process = process
        log.info(
            "webhook dispatcher process started",
            extra={"event": "webhook.dispatcher_started", "pid": process.pid},
        )
        return time.monotonic()

    def _supervise(self) -> None:
        started = time.monotonic()
        first = True
        backoff = _FIRST_BACKOFF_SECONDS
        while not self._stopping.wait(_POLL_SECONDS):
            with self._lock:
                process = self._process
            code = None if process is None else process.poll()
            if code is None:
                continue
            lived = time.monotonic() - started
            # Killed by a signal (a negative code) is not a failure to start.
            if first and code > 0 and lived < self._start_grace:
                self.failed_start = code
                log.error(
                    "the webhook dispatcher process failed to start; stopping",
                    extra={"event": "webhook.dispatcher_failed_start", "exit_code": code},
                )
                self._on_failed_start()
                return
            backoff = _FIRST_BACKOFF_SECONDS if lived >= self._start_grace else backoff
            log.error(
                "the webhook dispatcher process exited; starting it again",
                extra={
                    "event": "webhook.dispatcher_exited",
                    "exit_code": code,
                    "restart_in_seconds": backoff,
                },
            )
            if self._stopping.wait(backoff):
                return
            first = False
            backoff = min(backoff * 2, _MOST_BACKOFF_SECONDS)
            try:
                started = self._spawn()
            except OSError as error:  # no process now (resources): the next turn tries again
                log.error(
                    "the webhook dispatcher process could not be started",
                    extra={
                        "event": "webhook.dispatcher_spawn_failed",
                        "error_type": type(error).__name__,
                    },
                )
                started = time.monotonic()

    def stop(self) -> None:
        """Stop supervising, then SIGTERM the child and wait for it (bounded)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def dispatcher_beside(settings: Settings) -> Iterator[DispatcherChild | None]:
    """Around serving: with `settings.dispatches_in_child`, the dispatcher child runs
    and the workers started inside read ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false;
    otherwise nothing (the worker dispatches in its event loop, or nobody does).
    Call from the main thread: it handles SIGINT and SIGTERM while serving does not
    (uvicorn and serve_workers handle them while they run, then restore these),
    stops the child, then exits as the signal would have without a child."""
    if not settings.dispatches_in_child:
        yield None
        return
    signalled: list[int] = []

    def stopped(signum: int, _frame: FrameType | None) -> None:
        first = not signalled
        signalled.append(signum)
        if first:
            raise _Stopped(signum)  # out of serving; a second signal waits for the child

    # One port for the child's metrics, kept for the children started again, so
    # that the workers' /metrics finds each at the address they read at their start.
    metrics_port = free_loopback_port()
    child = DispatcherChild(
        child_command(os.getpid(), metrics_port=metrics_port),
        os.environ,  # copied: the child reads the original environment
        on_failed_start=lambda: os.kill(os.getpid(), signal.SIGTERM),
    )
    child.start()
    # Read by create_app in every worker: no dispatcher there, and /metrics shows
    # the child's webhook figures (service/web/dispatcher_metrics.py).
    for_workers = {
        IN_SERVE_VARIABLE: "false",
        METRICS_URL_VARIABLE: f"http://127.0.0.1:{metrics_port}/metrics",
    }
    originals = {name: os.environ.get(name) for name in for_workers}
    os.environ.update(for_workers)
    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield child
    except _Stopped:
        pass
    finally:
        if not signalled:
            signalled.append(0)  # from now on a signal only waits for the child
        for name, original in originals.items():
            if original is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = original
        try:
            child.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if child.failed_start is not None:
        raise SystemExit(child.failed_start)
    if signalled[0]:
        signal.raise_signal(signalled[0])  # as `accord serve` exits without a child
