"""Synthetic interaction logs with real item-item structure, for tests and benchmarks at any scale."""

from __future__ import annotations

import numpy as np
import pandas as pd

from accel.errors import InputError
from accel.validation import check_positive_int

#: Share of a user's interactions drawn from their taste cluster (the rest follow global popularity).
IN_CLUSTER_SHARE = 0.8


def synthetic_interactions(
    n_users: int,
    n_items: int,
    *,
    mean_per_user: float = 30,
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
    interactions at times uniform over ``days`` days from ``start``; a user may
    repeat an item (as in purchase logs). Ids are ``int32`` (users ``0..n_users-1``;
    items ``0..n_items-1``, rare ones possibly absent).
    """
    for name, value in (
        ("n_users", n_users),
        ("n_items", n_items),
        ("n_clusters", n_clusters),
        ("days", days),
    ):
        check_positive_int(name, value)
    if not mean_per_user >= 1:
        raise InputError(f"mean_per_user must be >= 1, got {mean_per_user!r}")
    if not popularity_exponent >= 0:
        raise InputError(f"popularity_exponent must be >= 0, got {popularity_exponent!r}")
    try:
        origin = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise InputError(f"start must be a date, got {start!r}") from None
    rng = np.random.default_rng(seed)
    n_clusters = min(int(n_clusters), int(n_items))

    # Popularity: a random item gets each rank, so ids carry no popularity signal.
    weight = np.empty(n_items, dtype=np.float64)
    weight[rng.permutation(n_items)] = (
        1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** popularity_exponent
    )
    item_cluster = rng.integers(0, n_clusters, size=n_items)
    item_cluster[rng.permutation(n_items)[:n_clusters]] = np.arange(n_clusters)  # no empty cluster

    # Items sorted by cluster; cluster c's cumulative weights are scaled into [c, c + 1].
    by_cluster = np.argsort(item_cluster, kind="stable").astype(np.int32)
    sorted_cluster = item_cluster[by_cluster]
    sorted_weight = weight[by_cluster]
    cum = np.cumsum(sorted_weight)
    bounds = np.searchsorted(sorted_cluster, np.arange(n_clusters + 1))
    base = np.concatenate(([0.0], cum))[bounds]
    totals = base[1:] - base[:-1]
    in_cluster_cdf = sorted_cluster + (cum - base[sorted_cluster]) / totals[sorted_cluster]
    global_cdf = np.cumsum(weight)
    global_cdf /= global_cdf[-1]

    counts = 1 + rng.poisson(mean_per_user - 1, size=n_users)
    n = int(counts.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    user_cluster = rng.integers(0, n_clusters, size=n_users).astype(np.int32)
    draws = rng.random(n)
    in_cluster = rng.random(n) < IN_CLUSTER_SHARE
    items = np.empty(n, dtype=np.int32)
    clusters = user_cluster[users[in_cluster]]
    pos = np.searchsorted(in_cluster_cdf, clusters + draws[in_cluster], side="right")
    pos = np.clip(pos, bounds[clusters], bounds[clusters + 1] - 1)  # guard against rounding at the edges
    items[in_cluster] = by_cluster[pos]
    out = ~in_cluster
    items[out] = np.minimum(np.searchsorted(global_cdf, draws[out], side="right"), n_items - 1)

    seconds = rng.integers(0, int(days) * 86_400, size=n, dtype=np.int64)
    timestamps = origin.as_unit("s").asm8 + seconds.astype("timedelta64[s]")
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": timestamps})
