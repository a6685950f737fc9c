"""Connecting to a Dask cluster: a scheduler address, or local worker processes started here."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from accel.errors import AccelError, InputError

#: Seconds to wait for a scheduler before saying it cannot be reached.
DEFAULT_TIMEOUT = 10.0


class SchedulerUnreachableError(AccelError, ConnectionError):
    """No Dask scheduler answered at the given address within the timeout."""


def connect(
    scheduler: str | None = None,
    n_workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Any:
    """A ``distributed.Client`` for ``scheduler`` (e.g. ``"tcp://SCHEDULER:8786"``), or a new local cluster.

    Without an address, ``n_workers`` worker processes (default: one per core)
    are started on this machine with ``threads_per_worker`` threads each; closing
    the client stops them (``processes=False`` runs the workers as threads of this
    process instead: no start-up cost, for small jobs). An address that does not answer within ``timeout``
    seconds raises :class:`SchedulerUnreachableError` rather than hanging.
    """
    from distributed import Client

    if scheduler is not None and n_workers is not None:
        raise InputError("give either a scheduler address or a number of local workers, not both")
    if scheduler is None:
        if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) < 1):
            raise InputError(f"the number of workers must be a positive integer, got {n_workers!r}")
        with _workers_ignore_ctrl_c():
            return Client(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=processes,
                dashboard_address=":0",
                silence_logs=logging.ERROR,  # workers' warnings (e.g. tasks cancelled on Ctrl-C)
            )
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise InputError(f"the scheduler address must be a string like tcp://HOST:8786, got {scheduler!r}")
    try:
        start = time.monotonic()
        _check_is_scheduler(scheduler, timeout)
        return Client(scheduler, timeout=max(timeout - (time.monotonic() - start), 1.0))
    except SchedulerUnreachableError:
        raise
    except ValueError as exc:
        raise InputError(f"bad scheduler address {scheduler!r}: {exc}") from None
    except OSError as exc:
        raise SchedulerUnreachableError(
            f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({exc}); start one with "
            "`dask scheduler` and check the address, port and firewall"
        ) from None


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start local worker processes with Ctrl-C ignored (inherited), so only this process handles it.

    A terminal's Ctrl-C goes to the whole process group: workers that took it too
    would die mid-task and flood the terminal with their tracebacks and Dask's
    lost-task logs, while this process stops them cleanly on its way out anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def silence_dask_logs() -> None:
    """Hide Dask's warnings from now on (e.g. while a cluster is stopped after Ctrl-C)."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


async def _identity(address: str, timeout: float, connected: list[bool]) -> Any:
    """The server's reply to Dask's ``identity`` request; ``connected`` is appended to on connecting."""
    from distributed.comm import connect as dask_connect
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme in ("tcp", "tls"):  # does anything listen there at all?
        _, writer = await asyncio.open_connection(*parse_host_port(location))
        writer.close()
    connected.append(True)
    comm = await dask_connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _check_is_scheduler(address: str, timeout: float) -> None:
    """Raise :class:`SchedulerUnreachableError` unless a Dask scheduler at ``address`` identifies itself.

    Dask's own handshake waits forever on a server that accepts the connection but
    speaks another protocol (an HTTP server on the port), so the whole exchange runs
    under one deadline, in a thread of its own (callers may be inside an event loop).
    """
    connected: list[bool] = []

    def ask() -> Any:
        return asyncio.run(asyncio.wait_for(_identity(address, timeout, connected), timeout))

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="accel-scheduler-probe")
    try:
        reply = pool.submit(ask).result(timeout + 5.0)
    except (asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError):
        if not connected:
            raise OSError(f"timed out trying to connect after {timeout:g} s") from None
        raise SchedulerUnreachableError(
            f"{address} did not identify itself as a Dask scheduler within {timeout:g} s: is that the "
            "scheduler's address and port (not its dashboard or another service)?"
        ) from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise SchedulerUnreachableError(f"{address} answered but is not a Dask scheduler (it is a {kind})")


@contextlib.contextmanager
def using_client(client: Any = None) -> Iterator[Any]:
    """``client``, else the current default Dask client, else a temporary local cluster closed on exit."""
    if client is not None:
        yield client
        return
    from distributed import default_client

    try:
        current = default_client()
    except ValueError:
        current = None
    if current is not None:
        yield current
        return
    owned = connect()
    try:
        yield owned
    finally:
        owned.close()
