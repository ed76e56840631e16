"""Several worker processes, each accepting on its own listening socket.

uvicorn's own `--workers` shares one listening socket between its processes, and
whichever is woken first accepts every connection waiting: measured with
bench/deliver.py, eight keep-alive clients landed 8/0, 7/1 and 6/2 on two workers
as often as 4/4, so a second worker often did nothing for them. Here each worker
binds its own socket with SO_REUSEPORT (Linux), and the kernel spreads connections
over the sockets by a hash of each connection's addresses. A reverse proxy that
balances per request does better still; this is for when there is none.

The parent only supervises: it checks first that the address is free (with
SO_REUSEPORT a second `accord serve` would otherwise share the port silently),
starts the workers, starts a worker again if one dies, and on SIGINT or SIGTERM
stops them all (uvicorn shuts each down gracefully) before it exits. A worker that
fails within its first seconds failed to start (an invalid policy set, an
unreachable database): then every worker is stopped and the command exits with
that worker's code, as one worker would (SECURITY-TESTS H09: fail closed, never
a loop of restarts).
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

import uvicorn

from service.settings import Settings
from service.web.http_protocol import HeadDeadlineProtocol

APP: Final = "service.app:create_app"
# What `accord serve` runs uvicorn with, one worker or several.
UVICORN_OPTIONS: Final[dict[str, Any]] = {
    "factory": True,
    "access_log": False,
    "proxy_headers": False,
    "timeout_keep_alive": 5,
    # uvicorn's httptools protocol plus a deadline for each request head.
    "http": HeadDeadlineProtocol,
}
_STOP_TIMEOUT: Final = 30.0
# A worker that exits sooner than this after it started did not start.
_START_GRACE: Final = 15.0


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration: its own lines ("Started server process",
    "Uvicorn running on ...", errors) in the service's JSON, from the first line on,
    through the one handler on the root logger (service/web/observability.py)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.web.observability.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # Raw paths and query strings: never logged (ours logs route templates).
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket listening on (host, port); with `reuse_port`, one of several
    that the kernel spreads connections over."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int) -> None:
    """A worker process: its own socket, one uvicorn server."""
    sock = listening_socket(host, port, reuse_port=True)
    config = uvicorn.Config(
        APP, host=host, port=port, log_config=log_config(Settings().log_level), **UVICORN_OPTIONS
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int) -> None:
    """Run `workers` processes on (host, port) until SIGINT or SIGTERM."""
    # Fails (OSError: address in use) if anything listens there already.
    listening_socket(host, port, reuse_port=False).close()
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    started: dict[BaseProcess, float] = {}
    failed_start: int | None = None

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(host, port), daemon=False)
        process.start()
        started[process] = time.monotonic()
        return process

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    try:
        while not stopping:
            for i, process in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started[process] < _START_GRACE:
                    failed_start = process.exitcode or 1
                    stopping = True
                    break
                del started[process]
                processes[i] = start()  # a worker died: the service keeps its size
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes what is in flight
        deadline = time.monotonic() + _STOP_TIMEOUT
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed_start is not None:
        raise SystemExit(failed_start)
