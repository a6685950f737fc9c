"""Dataset loaders in their original layouts, and the checked, cached download (from a local server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from accel.data import loaders
from accel.errors import InputError

U_DATA = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n3\t30\t1\t881250952\n"


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(
        "10|Toy Story (1995)|x\n20|Caf\xe9 (1994)|y\n30|Heat (1995)|z\n".encode("latin-1")
    )
    return folder


def test_movielens_layouts(tmp_path):
    inter = loaders.load_movielens(write_100k(tmp_path / "ml-100k"))
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4) and inter.has_time
    assert inter.frame["time"].min() == pd.Timestamp(881250949, unit="s")
    assert len(loaders.load_movielens(tmp_path / "ml-100k", min_rating=4)) == 2
    titles = loaders.movielens_titles(tmp_path / "ml-100k")
    assert titles[20] == "Café (1994)"

    one_m = tmp_path / "ml-1m"
    one_m.mkdir()
    (one_m / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    (one_m / "movies.dat").write_text("1193::One Flew (1975)::Drama\n661::James (1996)::Animation\n")
    inter = loaders.load_movielens(one_m)
    assert list(inter.item_ids) == [661, 1193] and loaders.movielens_titles(one_m)[661] == "James (1996)"

    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    (latest / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n"
    )
    assert loaders.load_movielens(latest).n_items == 2


def test_real_ml100k(ml100k_dir):
    inter = loaders.load_movielens(ml100k_dir)
    assert (inter.n_users, inter.n_items, len(inter)) == (943, 1682, 100_000)
    assert loaders.movielens_titles(ml100k_dir)[1].startswith("Toy Story")


def test_hm_layout(tmp_path):
    (tmp_path / "transactions_train.csv").write_text(
        "t_dat,customer_id,article_id,price,sales_channel_id\n"
        "2020-09-01,aaa,0108775015,0.01,2\n2020-09-02,aaa,0108775044,0.01,2\n"
        "2020-09-03,bbb,0108775015,0.01,1\n2018-01-01,ccc,0110065001,0.02,1\n"
    )
    (tmp_path / "articles.csv").write_text(
        "article_id,product_code,prod_name\n0108775015,108775,Strap top\n0108775044,108775,Strap top\n"
        "0110065001,110065,OP T-shirt\n"
    )
    by_article = loaders.load_hm(tmp_path)
    assert list(by_article.item_ids) == ["0108775015", "0108775044", "0110065001"]  # as in the files
    by_product = loaders.load_hm(tmp_path, item="prod_name", since="2020-01-01")
    assert list(by_product.item_ids) == ["Strap top"] and list(by_product.user_ids) == ["aaa", "bbb"]
    assert len(by_product) == 2  # aaa's two articles are one product
    with pytest.raises(InputError, match="no column 'colour'"):
        loaders.load_hm(tmp_path, item="colour")
    with pytest.raises(InputError, match=r"transactions_train\.csv"):
        loaders.load_hm(tmp_path / "elsewhere")


def test_missing_sources(tmp_path):
    with pytest.raises(InputError, match="no MovieLens ratings"):
        loaders.load_movielens(tmp_path)
    with pytest.raises(InputError, match="download=True"):
        loaders.load_movielens("ml-100k", cache_dir=tmp_path)
    with pytest.raises(InputError, match="neither a folder"):
        loaders.load_movielens(tmp_path / "nothing")


@pytest.fixture
def server(tmp_path):
    """A local HTTP server for a folder holding ``ml-100k.zip`` and its ``.md5``; yields (url, folder)."""
    root = tmp_path / "site"
    write_100k(root / "src" / "ml-100k")
    with zipfile.ZipFile(root / "ml-100k.zip", "w") as zf:
        for f in (root / "src" / "ml-100k").iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    digest = hashlib.md5((root / "ml-100k.zip").read_bytes()).hexdigest()
    (root / "ml-100k.zip.md5").write_text(f"MD5 (ml-100k.zip) = {digest}\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_once_with_checksum(server, tmp_path, monkeypatch):
    url, root = server
    monkeypatch.setattr(loaders, "MOVIELENS_BASE_URL", url)
    cache = tmp_path / "cache"
    inter = loaders.load_movielens("ml-100k", cache_dir=cache, download=True)
    assert len(inter) == 4 and (cache / "ml-100k" / "u.data").is_file() and (cache / "ml-100k.zip").is_file()
    (root / "ml-100k.zip").unlink()  # the second load must not touch the network
    assert len(loaders.load_movielens("ml-100k", cache_dir=cache)) == 4


def test_download_rejects_bad_checksum(server, tmp_path):
    url, _ = server
    with pytest.raises(InputError, match="checksum mismatch"):
        loaders.fetch_zip(url + "ml-100k.zip", tmp_path / "cache", md5="0" * 32)
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is left
    with pytest.raises(InputError, match="cannot"):
        loaders.download(url + "missing.zip", tmp_path / "cache" / "missing.zip", md5="0" * 32)
