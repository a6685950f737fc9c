"""Readers for public datasets in their original layouts, and a checked, cached download.

MovieLens (100k, 1M, 20M, latest) is read from a local folder as GroupLens
ships it, or fetched once into a cache folder; the H&M Kaggle competition data
must be downloaded by hand (Kaggle needs a login) and is read from its folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from accel.atomic import atomic_dir, atomic_file
from accel.data.interactions import Interactions, read_table
from accel.errors import InputError

MOVIELENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
#: Dataset names GroupLens publishes as ``<name>.zip`` (each with a ``<name>.zip.md5`` beside it).
MOVIELENS = ("ml-100k", "ml-1m", "ml-20m", "ml-latest", "ml-latest-small")
RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$ACCEL_CACHE``, else ``~/.cache/accel``."""
    return Path(os.environ.get("ACCEL_CACHE") or Path.home() / ".cache" / "accel")


# ---- MovieLens ------------------------------------------------------------------------
def _ratings_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("u.data", "ratings.dat", "ratings.csv"):
        if (path / name).is_file():
            return path / name
    raise InputError(f"{path} holds no MovieLens ratings (u.data, ratings.dat or ratings.csv)")


def read_movielens_ratings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The ratings of a MovieLens folder or file as ``user_id, item_id, rating, timestamp``.

    Knows ``u.data`` (100k, tab-separated), ``ratings.dat`` (1M, ``::``-separated)
    and ``ratings.csv`` (20M and latest, with a header); ``timestamp`` stays Unix seconds.
    """
    file = _ratings_file(Path(path))
    try:
        if file.name == "ratings.csv":
            frame = pd.read_csv(file)
            frame.columns = RATING_COLUMNS[: len(frame.columns)]
            return frame
        if file.name == "ratings.dat":
            frame = pd.read_csv(file, sep=":", header=None, usecols=[0, 2, 4, 6])
        else:
            frame = pd.read_csv(file, sep="\t", header=None)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {file} as MovieLens ratings: {str(exc).strip().splitlines()[0]}"
        ) from None
    if frame.shape[1] != 4:
        raise InputError(f"{file} has {frame.shape[1]} columns; MovieLens ratings have 4")
    frame.columns = RATING_COLUMNS
    return frame


#: The 19 genre flags at the end of the original ``u.item`` (as named in its ``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def movielens_items(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Each movie's ``item_id``, ``title`` and ``genres`` (``"Action|Comedy"``) from a MovieLens folder.

    Reads ``u.item`` (the original 24 columns with 19 genre flags, or the reduced
    ``id|title|genres`` form with space-separated genres), ``movies.dat`` or ``movies.csv``.
    Movies without a genre have a missing value.
    """
    path = Path(path)
    if (path / "u.item").is_file():
        frame = pd.read_csv(path / "u.item", sep="|", header=None, encoding="latin-1")
        if frame.shape[1] == 5 + len(ML100K_GENRES):
            flags = frame.iloc[:, 5:].to_numpy(dtype=bool)
            genres = ["|".join(g for g, on in zip(ML100K_GENRES, row, strict=True) if on) for row in flags]
        else:
            genres = frame[2].fillna("").astype(str).str.split().str.join("|").tolist()
        frame = pd.DataFrame({"item_id": frame[0], "title": frame[1], "genres": genres})
    elif (path / "movies.dat").is_file():
        frame = pd.read_csv(path / "movies.dat", sep="::", header=None, engine="python", encoding="latin-1")
        frame.columns = ["item_id", "title", "genres"]
    elif (path / "movies.csv").is_file():
        frame = pd.read_csv(path / "movies.csv")
        frame.columns = ["item_id", "title", "genres"]
    else:
        raise InputError(f"{path} holds no MovieLens movie list (u.item, movies.dat or movies.csv)")
    genres = frame["genres"].fillna("").astype(str)
    frame["genres"] = genres.where(~genres.isin(["", "(no genres listed)"]), None)
    return frame


def movielens_titles(path: str | os.PathLike[str]) -> pd.Series:
    """Movie titles by item id from ``u.item``, ``movies.dat`` or ``movies.csv`` in a MovieLens folder."""
    return movielens_items(path).set_index("item_id")["title"]


def load_movielens(
    source: str | os.PathLike[str] = "ml-100k",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    min_rating: float | None = None,
    show_progress: bool = False,
) -> Interactions:
    """MovieLens ratings as timed :class:`Interactions` (``min_rating`` keeps only ratings ≥ it).

    ``source`` is a folder (or ratings file) in the original layout, or one of
    :data:`MOVIELENS`: then it is read from ``cache_dir/<name>``, fetched there
    first when ``download`` is true (the zip is checked against GroupLens' MD5).
    """
    path = Path(source)
    if str(source) in MOVIELENS and not path.exists():
        path = Path(cache_dir or default_cache_dir()) / str(source)
        if not path.is_dir():
            if not download:
                raise InputError(
                    f"{source} is not in the cache at {path.parent}: pass download=True (or a local folder)"
                )
            path = fetch_zip(MOVIELENS_BASE_URL + f"{source}.zip", path.parent, show_progress=show_progress)
    elif not path.exists():
        raise InputError(f"{source} is neither a folder nor one of {', '.join(MOVIELENS)}")
    frame = read_movielens_ratings(path)
    if min_rating is not None:
        frame = frame[frame["rating"] >= min_rating]
    return Interactions.from_frame(frame, "user_id", "item_id", "timestamp")


# ---- H&M ------------------------------------------------------------------------------
def load_hm(path: str | os.PathLike[str], *, item: str = "article_id", since: object = None) -> Interactions:
    """The H&M Kaggle purchases (``transactions_train.csv``) as timed :class:`Interactions`.

    ``item="article_id"`` uses articles as items; ``item="prod_name"`` (or any
    other column of ``articles.csv``) merges articles into those products.
    ``since`` drops purchases before that date (the full log is 31M rows).
    """
    path = Path(path)
    transactions = path / "transactions_train.csv"
    if not transactions.is_file():
        raise InputError(f"{path} holds no transactions_train.csv (the H&M Kaggle layout)")
    frame = read_table(
        transactions,
        "csv",
        id_cols=("customer_id", "article_id"),
        usecols=["t_dat", "customer_id", "article_id"],
    )
    frame["t_dat"] = pd.to_datetime(frame["t_dat"], errors="coerce")
    if frame["t_dat"].isna().any():
        raise InputError(f"{transactions}: column 't_dat' holds a value that is not a date")
    if since is not None:
        frame = frame[frame["t_dat"] >= pd.Timestamp(since)]
    if item != "article_id":
        articles = read_table(path / "articles.csv", "csv", id_cols=("article_id", item))
        if item not in articles.columns:
            raise InputError(f"articles.csv has no column {item!r}")
        frame = frame.merge(articles[["article_id", item]], on="article_id", how="left")
    return Interactions.from_frame(frame, "customer_id", item, "t_dat")


# ---- downloads --------------------------------------------------------------------------
def _expected_md5(url: str) -> str:
    """The MD5 published beside ``url`` as ``url + ".md5"`` (GroupLens' convention)."""
    try:
        with urllib.request.urlopen(url + ".md5", timeout=30) as response:
            text = response.read().decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"cannot fetch the checksum {url}.md5: {exc}") from None
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if not match:
        raise InputError(f"{url}.md5 holds no MD5 checksum")
    return match.group(0).lower()


def download(
    url: str, dest: str | os.PathLike[str], *, md5: str | None = None, show_progress: bool = False
) -> Path:
    """Fetch ``url`` to ``dest`` atomically and check its MD5 (fetched from ``url.md5`` when not given).

    A file already at ``dest`` is reused without a download.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    expected = (md5 or _expected_md5(url)).lower()
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_file(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(tmp, "wb") as out,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=None if show_progress else True,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != expected:
                raise InputError(
                    f"checksum mismatch for {url}: got MD5 {digest.hexdigest()}, expected {expected}"
                )
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"cannot download {url}: {exc}") from None
    return dest


def fetch_zip(
    url: str, cache_dir: str | os.PathLike[str], *, md5: str | None = None, show_progress: bool = False
) -> Path:
    """Download a zip once into ``cache_dir`` and unpack it to ``cache_dir/<name>``; returns that folder."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip")
    target = cache_dir / name
    if target.is_dir():
        return target
    archive = download(url, cache_dir / f"{name}.zip", md5=md5, show_progress=show_progress)
    try:
        with zipfile.ZipFile(archive) as zf, atomic_dir(target) as tmp:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise InputError(f"{archive} holds an unsafe path {member!r}")
            zf.extractall(tmp)
            inner = tmp / name
            if inner.is_dir() and len(list(tmp.iterdir())) == 1:  # the usual <name>/ top folder
                for child in inner.iterdir():
                    shutil.move(str(child), tmp / child.name)
                inner.rmdir()
    except zipfile.BadZipFile:
        raise InputError(f"{archive} is not a valid zip file") from None
    return target
