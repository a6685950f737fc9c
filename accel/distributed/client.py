"""Connecting to a Dask cluster: a scheduler address, or local worker processes started here."""

from __future__ import annotations

import contextlib
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
) -> Any:
    """A ``distributed.Client`` for ``scheduler`` (e.g. ``"tcp://10.0.0.5:8786"``), or a new local cluster.

    Without an address, ``n_workers`` worker processes (default: one per core)
    are started on this machine with ``threads_per_worker`` threads each; closing
    the client stops them. An address that does not answer within ``timeout``
    seconds raises :class:`SchedulerUnreachableError` rather than hanging.
    """
    from distributed import Client

    if scheduler is not None and n_workers is not None:
        raise InputError("give either a scheduler address or a number of local workers, not both")
    if scheduler is None:
        if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) < 1):
            raise InputError(f"the number of workers must be a positive integer, got {n_workers!r}")
        return Client(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
        )
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise InputError(f"the scheduler address must be a string like tcp://HOST:8786, got {scheduler!r}")
    try:
        return Client(scheduler, timeout=timeout)
    except ValueError as exc:
        raise InputError(f"bad scheduler address {scheduler!r}: {exc}") from None
    except OSError as exc:
        raise SchedulerUnreachableError(
            f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({exc}); start one with "
            "`dask scheduler` and check the address, port and firewall"
        ) from None


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
