"""Several gateway processes on one listening socket, so every core serves agents.

One gateway process answers one call at a time in Python: on a machine with more cores, agents queue
behind one of them. ``assay gateway serve --workers N`` binds the port once (so a port in use is still a
clear error before anything starts), then starts N worker processes that accept from that same socket;
the kernel hands each new connection to whichever worker is waiting. The gateway is stateless over HTTP
(every request carries its bearer token and is checked alone), so any worker can answer any request.

What each worker holds on its own: its in-memory certified versions (so memory grows N times), its
client cache, its policy reload (each audits nothing new when the policy has not changed, as the audit
log already holds that digest), and its count of failed authentications per address (so an address can
fail up to N times ``--auth-failures`` a minute before every worker answers 429). Audit appends from all
workers are serialised by the catalog database, as for any set of assay processes.

Workers are started with ``spawn`` (a fresh interpreter, never a fork of a process whose threads may
hold locks). A worker that dies is started again, up to :data:`RESTARTS` times a minute; past that, or
on SIGINT/SIGTERM, every worker is stopped (SIGTERM: in-flight calls finish) and the command exits.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections import deque
from multiprocessing.process import BaseProcess
from types import FrameType

from governance.gateway import GatewaySettings

RESTARTS = 5  # per worker per minute
STOP_GRACE_S = 10.0


def serve_workers(settings: GatewaySettings, host: str, sock: socket.socket, workers: int) -> int:
    """Run ``workers`` gateway processes on ``sock`` until a signal; the exit code for the command."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker, args=(settings, host, sock, index), name=f"assay-gateway-{index}", daemon=False
        )
        process.start()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    running = {i: start(i) for i in range(1, workers + 1)}
    restarts: dict[int, deque[float]] = {i: deque() for i in running}
    code = 0
    try:
        while not stopping.wait(0.2):
            for index, process in list(running.items()):
                if process.is_alive():
                    continue
                now = time.monotonic()
                recent = restarts[index]
                while recent and now - recent[0] > 60:
                    recent.popleft()
                if len(recent) >= RESTARTS:
                    print(
                        f"assay: gateway worker {index} exited {RESTARTS} times within a minute (last exit "
                        f"code {process.exitcode}); stopping every worker. Fix: see the worker's errors above.",
                        file=sys.stderr,
                    )
                    code = 1
                    stopping.set()
                    break
                print(
                    f"assay: gateway worker {index} exited (code {process.exitcode}); starting it again.",
                    file=sys.stderr,
                )
                recent.append(now)
                running[index] = start(index)
    finally:
        for process in running.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes in-flight requests, then exits
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _worker(settings: GatewaySettings, host: str, sock: socket.socket, index: int) -> None:
    """One worker: its own gateway (policy, contracts and catalog loaded afresh) on the shared socket."""
    from governance.gateway import Gateway, asgi_app, serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops workers with SIGTERM, once
    serve(asgi_app(Gateway(settings), host), sock, name=f"worker-{index}")
