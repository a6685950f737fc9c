"""Synthetic interaction logs with real item-item structure, for tests and benchmarks at any scale."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from accel.errors import InputError
from accel.validation import check_positive_int

#: Share of a user's interactions drawn from their taste cluster (the rest follow global popularity).
IN_CLUSTER_SHARE = 0.8
#: Interactions drawn at a time by :func:`synthetic_matrix` (its temporaries are ~25 bytes each).
CHUNK_INTERACTIONS = 4_000_000


@dataclass(frozen=True)
class _Catalogue:
    """Each item's popularity and taste cluster, as the cumulative weights the draws search."""

    by_cluster: np.ndarray  # item ids sorted by cluster
    bounds: np.ndarray  # cluster c's items are by_cluster[bounds[c]:bounds[c + 1]]
    in_cluster_cdf: np.ndarray  # cluster c's cumulative weights, scaled into [c, c + 1]
    global_cdf: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n_items: int, n_clusters: int, exponent: float) -> _Catalogue:
        # Popularity: a random item gets each rank, so ids carry no popularity signal.
        weight = np.empty(n_items, dtype=np.float64)
        weight[rng.permutation(n_items)] = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** exponent
        item_cluster = rng.integers(0, n_clusters, size=n_items)
        item_cluster[rng.permutation(n_items)[:n_clusters]] = np.arange(n_clusters)  # no empty cluster
        by_cluster = np.argsort(item_cluster, kind="stable").astype(np.int32)
        sorted_cluster = item_cluster[by_cluster]
        cum = np.cumsum(weight[by_cluster])
        bounds = np.searchsorted(sorted_cluster, np.arange(n_clusters + 1))
        base = np.concatenate(([0.0], cum))[bounds]
        totals = base[1:] - base[:-1]
        in_cluster_cdf = sorted_cluster + (cum - base[sorted_cluster]) / totals[sorted_cluster]
        global_cdf = np.cumsum(weight)
        global_cdf /= global_cdf[-1]
        return cls(by_cluster, bounds, in_cluster_cdf, global_cdf)

    def items(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        """One item per entry of ``clusters`` (each interaction's user cluster), as int32."""
        n = clusters.size
        draws = rng.random(n)
        in_cluster = rng.random(n) < IN_CLUSTER_SHARE
        items = np.empty(n, dtype=np.int32)
        own = clusters[in_cluster]
        pos = np.searchsorted(self.in_cluster_cdf, own + draws[in_cluster], side="right")
        pos = np.clip(pos, self.bounds[own], self.bounds[own + 1] - 1)  # rounding at the edges
        items[in_cluster] = self.by_cluster[pos]
        out = ~in_cluster
        n_items = self.global_cdf.size
        items[out] = np.minimum(np.searchsorted(self.global_cdf, draws[out], side="right"), n_items - 1)
        return items


def _check_sizes(n_users: int, n_items: int, n_clusters: int, exponent: float) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_clusters", n_clusters)):
        check_positive_int(name, value)
    if not exponent >= 0:
        raise InputError(f"popularity_exponent must be >= 0, got {exponent!r}")


def _mean_per_user(n_users: int, mean_per_user: float, n_interactions: int | None) -> float:
    """``mean_per_user``, or the mean that gives about ``n_interactions`` rows when that is set."""
    if n_interactions is not None:
        check_positive_int("n_interactions", n_interactions)
        if n_interactions < n_users:
            raise InputError(
                f"n_interactions ({n_interactions:,}) must be at least n_users ({n_users:,}): "
                "every user has an interaction"
            )
        mean_per_user = n_interactions / n_users
    if not mean_per_user >= 1:
        raise InputError(f"mean_per_user must be >= 1, got {mean_per_user!r}")
    return float(mean_per_user)


def synthetic_interactions(
    n_users: int,
    n_items: int,
    *,
    mean_per_user: float = 30,
    n_interactions: int | None = None,
    n_clusters: int = 20,
    popularity_exponent: float = 1.0,
    seed: int = 0,
    start: str = "2023-01-01",
    days: int = 730,
) -> pd.DataFrame:
    """A log of ``user_id``, ``item_id``, ``timestamp`` rows, reproducible from ``seed``.

    Items have power-law popularity (the item of popularity rank r is drawn with
    weight ``1 / r**popularity_exponent``) and each belongs to one of
    ``n_clusters`` taste clusters; every user belongs to one cluster and draws
    80% of their interactions from its items (by popularity), the rest from the
    whole catalogue. So item-item models learn real co-occurrence that plain
    popularity cannot. Each user has ``1 + Poisson(mean_per_user - 1)``
    interactions (``n_interactions``, when given, sets the mean to
    ``n_interactions / n_users``) at times uniform over ``days`` days from
    ``start``; a user may repeat an item (as in purchase logs). Ids are ``int32``
    (users ``0..n_users-1``; items ``0..n_items-1``, rare ones possibly absent).
    For logs of tens of millions of rows, :func:`synthetic_matrix` draws the same
    kind of log straight into a sparse matrix, a chunk at a time.
    """
    _check_sizes(n_users, n_items, n_clusters, popularity_exponent)
    check_positive_int("days", days)
    mean_per_user = _mean_per_user(n_users, mean_per_user, n_interactions)
    try:
        origin = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise InputError(f"start must be a date, got {start!r}") from None
    rng = np.random.default_rng(seed)
    catalogue = _Catalogue.draw(rng, int(n_items), min(int(n_clusters), int(n_items)), popularity_exponent)
    counts = 1 + rng.poisson(mean_per_user - 1, size=n_users)
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    user_cluster = rng.integers(0, catalogue.bounds.size - 1, size=n_users).astype(np.int32)
    items = catalogue.items(rng, user_cluster[users])
    seconds = rng.integers(0, int(days) * 86_400, size=users.size, dtype=np.int64)
    timestamps = origin.as_unit("s").asm8 + seconds.astype("timedelta64[s]")
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": timestamps})


def synthetic_matrix(
    n_users: int,
    n_items: int,
    *,
    n_interactions: int | None = None,
    mean_per_user: float = 30,
    n_clusters: int = 20,
    popularity_exponent: float = 1.0,
    seed: int = 0,
    chunk: int = CHUNK_INTERACTIONS,
) -> sp.csr_matrix:
    """The binary users × items CSR (float32) of a log drawn as :func:`synthetic_interactions` draws it.

    Users are drawn ``chunk`` interactions at a time (each chunk from its own seeded
    stream) and each chunk is de-duplicated into CSR rows at once, so memory stays
    at the result (8 bytes per distinct interaction) plus one chunk's temporaries:
    a 2M-user, 1M-item, 50M-interaction log takes well under a minute. A user's
    repeated items count once, so ``nnz`` is somewhat below ``n_interactions``.
    """
    _check_sizes(n_users, n_items, n_clusters, popularity_exponent)
    check_positive_int("chunk", chunk)
    mean_per_user = _mean_per_user(n_users, mean_per_user, n_interactions)
    rng = np.random.default_rng(seed)
    catalogue = _Catalogue.draw(rng, int(n_items), min(int(n_clusters), int(n_items)), popularity_exponent)
    counts = 1 + rng.poisson(mean_per_user - 1, size=n_users)
    user_cluster = rng.integers(0, catalogue.bounds.size - 1, size=n_users).astype(np.int32)
    ends = np.cumsum(counts)
    cuts = np.unique(np.searchsorted(ends, np.arange(chunk, int(ends[-1]), chunk), side="right"))
    starts = np.concatenate(([0], cuts, [n_users]))
    indices, lengths = [], []
    for part, (lo, hi) in enumerate(itertools.pairwise(starts)):
        if hi <= lo:
            continue
        local = np.repeat(np.arange(hi - lo, dtype=np.int64), counts[lo:hi])
        items = catalogue.items(np.random.default_rng([seed, part]), user_cluster[lo:hi][local])
        keys = np.unique(local * n_items + items)  # sorted, one per (user, item)
        indices.append((keys % n_items).astype(np.int32))
        lengths.append(np.bincount(keys // n_items, minlength=hi - lo))
    indptr = np.concatenate(([0], np.cumsum(np.concatenate(lengths)))).astype(np.int64)
    index = np.concatenate(indices)
    data = np.ones(index.size, dtype=np.float32)
    return sp.csr_matrix((data, index, indptr), shape=(n_users, n_items))
