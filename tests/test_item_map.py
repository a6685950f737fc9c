"""The item map: fingerprints, the coordinate table and its ids, purity, drawing, and `accel map`."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import random_interactions

from accel import EASE, InputError, ItemKNN, TopPopular
from accel.cli import main
from accel.data import synthetic_interactions
from accel.data.loaders import movielens_items
from accel.plots import draw_item_map, item_fingerprints, item_map, neighbourhood_purity, read_item_meta

needs_umap = pytest.mark.skipif(
    importlib.util.find_spec("umap") is None, reason="umap-learn is not installed (pip install umap-learn)"
)


def first_two_columns(features, n_neighbors, seed):
    """An injected layout: the fingerprint's first two entries (so the test knows where items land)."""
    dense = features.toarray() if hasattr(features, "toarray") else np.asarray(features)
    return dense[:, :2]


@pytest.fixture(scope="module")
def ease(small_X_module):
    return EASE(l2=10, backend="numpy").fit(small_X_module, show_progress=False)


@pytest.fixture(scope="module")
def small_X_module():
    return random_interactions(300, 40, 0.1, seed=2)


def test_fingerprints_are_ease_columns_and_knn_rows(ease, small_X_module):
    items = np.array([3, 7, 20])
    np.testing.assert_allclose(item_fingerprints(ease, items), ease.B_[:, items].T)
    knn = ItemKNN("cosine", k=5, backend="numpy").fit(small_X_module, show_progress=False)
    np.testing.assert_allclose(item_fingerprints(knn, items).toarray(), knn.S_[items].toarray())
    with pytest.raises(InputError, match="TopPopular has no item-item weights"):
        item_fingerprints(TopPopular(backend="numpy").fit(small_X_module, show_progress=False), items)


def test_pruned_ease_fingerprints_are_its_pruned_columns(ease):
    pruned = ease.prune(0.25)
    items = np.array([3, 7, 20])
    dense_pruned = pruned.S_.toarray()
    np.testing.assert_allclose(item_fingerprints(pruned, items).toarray(), dense_pruned[:, items].T)


def test_meta_file_ids_keep_their_leading_zeros(ease, tmp_path):
    ids = np.array([f"{i:010d}" for i in range(40)])
    (tmp_path / "items.csv").write_text(
        "article_id,group\n" + "".join(f"{i},{'even' if n % 2 == 0 else 'odd'}\n" for n, i in enumerate(ids))
    )
    table = item_map(
        ease,
        tmp_path / "items.csv",
        item_col="article_id",
        color_by="group",
        item_ids=ids,
        layout=first_two_columns,
    )
    assert table["group"].tolist() == ["even" if n % 2 == 0 else "odd" for n in range(40)]


def test_table_maps_positions_to_the_model_item_ids(ease):
    ids = np.array([f"sku-{i:03d}" for i in range(40)])
    meta = pd.DataFrame({"sku": ids[::-1], "group": ["a|b" if i % 2 else "c" for i in range(40)]})
    table = item_map(ease, meta, item_col="sku", color_by="group", item_ids=ids, layout=first_two_columns)
    assert list(table.columns) == ["item", "x", "y", "group"]
    assert list(table["item"]) == list(ids)
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), ease.B_[:2, :].T)
    assert table.set_index("item").loc["sku-038", "group"] == meta.set_index("sku").loc["sku-038", "group"]
    assert table.attrs["layout"] == "first_two_columns" and table.attrs["seconds"] >= 0
    assert table.attrs["purity"]["items"] == 40

    sampled = item_map(ease, sample=20, seed=1, item_ids=ids, layout="svd")
    assert len(sampled) == 20 and set(sampled["item"]) <= set(ids) and sampled["item"].is_unique


def test_purity_against_a_dense_reference_and_chance():
    rng = np.random.default_rng(0)
    labels = np.array(["x", "y", "z"])[rng.integers(0, 3, 300)]
    centres = {"x": (0, 0), "y": (10, 0), "z": (0, 10)}
    xy = np.array([centres[label] for label in labels]) + rng.normal(0, 1, (300, 2))
    result = neighbourhood_purity(xy, labels, k=5, n_shuffles=4)
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :5]
    assert result["purity"] == pytest.approx(np.mean(labels[nearest] == labels[:, None]))
    assert result["purity"] > 0.95 and abs(result["shuffled"] - 1 / 3) < 0.05
    # several labels per item: sharing any one counts; unlabelled items are left out
    multi = pd.Series(["a|b", "b", "c", None, "c|a"] * 60)
    assert neighbourhood_purity(xy, multi, k=5)["items"] == 240


def test_drawing_png_and_html(ease, tmp_path):
    meta = pd.DataFrame({"item_id": range(40), "genre": list("abcdefghijklmnop") * 2 + [None] * 8})
    meta["title"] = [f"<Film {i}>" for i in range(40)]
    table = item_map(ease, meta, layout="svd")
    assert table.attrs["color_by"] == "genre"
    png = draw_item_map(table, tmp_path / "map.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    page = draw_item_map(table, tmp_path / "map.html").read_text()
    assert page.count("<circle") == 40 and "&lt;Film 7&gt;" in page and "other" in page
    with pytest.raises(InputError, match="must end in"):
        draw_item_map(table, tmp_path / "map.txt")


def test_movielens_genres_in_both_u_item_layouts(tmp_path):
    reduced, original = tmp_path / "reduced", tmp_path / "original"
    reduced.mkdir(), original.mkdir()
    (reduced / "u.item").write_text("1|Toy Story (1995)|Animation Children's Comedy\n2|Blank (1990)|\n")
    flags = ["0"] * 19
    flags[1] = flags[8] = "1"
    (original / "u.item").write_text("7|Heat (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n")
    for folder in (reduced, original):  # the file itself is read as its folder is
        pd.testing.assert_frame_equal(
            read_item_meta(folder / "u.item", "item_id"), read_item_meta(folder, "x")
        )
    genres = movielens_items(reduced)["genres"]
    assert genres[0] == "Animation|Children's|Comedy" and pd.isna(genres[1])
    assert movielens_items(original).iloc[0].to_dict() == {
        "item_id": 7,
        "title": "Heat (1995)",
        "genres": "Action|Drama",
    }


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("map")
    log = folder / "log.csv"
    synthetic_interactions(300, 80, mean_per_user=15, seed=4).to_csv(log, index=False)
    pd.DataFrame({"item_id": range(200), "kind": ["shoe", "hat", "bag|hat"] * 66 + ["x", "y"]}).to_csv(
        folder / "meta.csv", index=False
    )
    for name in ("ease", "toppop"):
        assert main(["fit", str(log), "--model", name, "--out", str(folder / name), "-q"]) == 0
    return folder


def test_cli_map_writes_picture_and_coordinates(saved_models, capsys):
    folder = saved_models
    code = main(
        ["map", str(folder / "ease"), "--meta", str(folder / "meta.csv"), "--color-by", "kind",
         "--layout", "svd", "--out", str(folder / "map.png"), "--coords", str(folder / "xy.csv")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "mapped" in err and "shuffled labels" in err and "wrote" in err
    coords = pd.read_csv(folder / "xy.csv")
    assert list(coords.columns) == ["item", "x", "y", "kind"]
    log_items = set(pd.read_csv(folder / "log.csv")["item_id"])
    assert set(coords["item"]) == log_items and (folder / "map.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "map.txt"], "must end in"),
        (["--out", "map.png", "--meta", "nometa.csv"], "do not exist"),
        (["--out", "map.png", "--meta", "meta.csv", "--color-by", "nope"], "no colour column 'nope'"),
        (["--out", "map.png", "--meta", "meta.csv", "--item-col", "sku"], "no id column 'sku'"),
        (["--out", "map.png", "--color-by", "kind"], "needs item attributes"),
        (["--out", "map.png", "--sample", "-3"], "sample must be a positive integer"),
        (["--out", "map.png", "--sample", "5"], "more than n_neighbors=15 items"),
        (["--out", "nofolder/map.png"], "does not exist"),
    ],
)
def test_cli_map_errors_exit_2_in_one_line(saved_models, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(saved_models)
    code = main(["map", "ease", "--layout", "svd", *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".html"])
def test_cli_map_replaces_only_its_own_pictures_and_coordinates(saved_models, capsys, suffix):
    """A picture or table accel did not write is refused and kept; accel's own are replaced."""
    folder = saved_models
    picture, coords = folder / f"holiday{suffix}", folder / "mycoords.csv"
    command = ["map", str(folder / "ease"), "--layout", "svd", "-q"]
    picture.write_bytes(b"the user's own picture")
    code = main([*command, "--out", str(picture)])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to replace" in err and len(err.strip().splitlines()) == 1, err
    assert picture.read_bytes() == b"the user's own picture"
    picture.unlink()
    coords.write_text("a,b\n1,2\n")
    code = main([*command, "--out", str(picture), "--coords", str(coords)])
    assert code == 2 and "refusing to replace" in capsys.readouterr().err
    assert coords.read_text() == "a,b\n1,2\n" and not picture.exists()
    coords.unlink()
    assert main([*command, "--out", str(picture), "--coords", str(coords)]) == 0
    first = picture.stat().st_ino
    assert main([*command, "--out", str(picture), "--coords", str(coords)]) == 0, capsys.readouterr().err
    assert picture.stat().st_ino != first and list(pd.read_csv(coords).columns)[:3] == ["item", "x", "y"]


def test_cli_map_refuses_models_without_item_weights(saved_models, capsys):
    code = main(
        ["map", str(saved_models / "toppop"), "--layout", "svd", "--out", str(saved_models / "t.png")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no item-item weights" in err and not (saved_models / "t.png").exists()


def test_missing_umap_is_a_clear_error(ease, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in ("umap", "cuml") else real(name)
    )
    with pytest.raises(InputError, match=r"pip install umap-learn"):
        item_map(ease, layout="auto")


@needs_umap
def test_umap_groups_ml100k_genres_better_than_chance(ml100k_dir):
    from accel.data.loaders import load_movielens

    inter = load_movielens(ml100k_dir)
    model = EASE(l2=200, backend="numpy").fit(inter.matrix(), show_progress=False)
    table = item_map(model, ml100k_dir, item_col="item_id", item_ids=inter.item_ids, layout="umap")
    purity = table.attrs["purity"]
    assert purity["items"] == len(table) == inter.n_items
    assert purity["purity"] > purity["shuffled"] + 10 * purity["shuffled_std"] + 0.05


def test_large_sparse_fingerprints_are_reduced_by_a_randomized_svd():
    from accel.plots.map_layout import REDUCED_DIMS, _compact, _randomized_svd

    rng = np.random.default_rng(0)
    low_rank = (rng.random((400, 6)) * [8, 6, 4, 3, 2, 1]) @ rng.random((6, 300))
    X = sp.csr_matrix(low_rank)
    us = _randomized_svd(X, 6, seed=1)
    u, s, _ = np.linalg.svd(low_rank, full_matrices=False)
    np.testing.assert_allclose(np.linalg.norm(us, axis=0), s[:6], rtol=1e-6)
    np.testing.assert_allclose(np.abs(us), np.abs(u[:, :6] * s[:6]), atol=1e-6)
    small = sp.random(50, 200, density=0.1, format="csr", random_state=0)
    assert _compact(small, 0)[1] == "cosine"
    big = sp.random(12_000, 500, density=0.01, format="csr", random_state=0)
    features, metric = _compact(big, 0)
    assert metric == "euclidean" and features.shape == (12_000, REDUCED_DIMS)


@needs_umap
def test_umap_layout_of_a_small_knn_model(small_X_module):
    knn = ItemKNN("cosine", k=10, backend="numpy").fit(small_X_module, show_progress=False)
    table = item_map(knn, layout="umap", n_neighbors=5, seed=3)
    assert table.attrs["layout"] == "umap" and table.shape == (40, 3)
    assert np.isfinite(table[["x", "y"]].to_numpy()).all() and table["item"].tolist() == list(range(40))


def test_wide_ease_fingerprints_keep_their_strongest_entries_chunk_by_chunk(ease, monkeypatch):
    from accel.models import ease as ease_module
    from accel.plots import map_layout

    monkeypatch.setattr(map_layout, "DENSE_FINGERPRINT_LIMIT", 10)
    monkeypatch.setattr(map_layout, "FINGERPRINT_TOP", 4)
    monkeypatch.setattr(ease_module, "_VECTOR_BYTES", 4 * 40 * 2)  # two columns at a time
    items = np.array([1, 5, 9, 30, 39])
    F = item_fingerprints(ease, items)
    dense = ease.B_[:, items].T
    assert sp.issparse(F) and F.shape == (5, 40) and F.nnz == 20
    for row in range(5):
        top = np.argsort(-np.abs(dense[row]))[:4]
        assert set(F[row].indices) == set(top)
        np.testing.assert_allclose(F[row].toarray().ravel()[top], dense[row, top])
