"""Scoring users and building the Gram matrix on a Dask cluster (local processes or many machines).

* :func:`recommend` - ``model.recommend`` chunk by chunk on the workers, same results.
* :func:`recommend_to_parquet` - one Parquet file per user chunk, retry-safe and resumable.
* :func:`gram_from_parquet` - ``XᵀX`` of a partitioned Parquet log, for :meth:`accel.EASE.fit_gram`.
* :func:`connect` - a client for a scheduler address, or a local cluster of N workers.

Dask is imported only when these functions run.
"""

from accel.distributed.client import SchedulerUnreachableError, connect
from accel.distributed.gram import gram_from_parquet
from accel.distributed.scoring import default_chunk_users, recommend, recommend_to_parquet

__all__ = [
    "SchedulerUnreachableError",
    "connect",
    "default_chunk_users",
    "gram_from_parquet",
    "recommend",
    "recommend_to_parquet",
]
