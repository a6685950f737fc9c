"""Past the n² buffer: SparseEASE side by side with SANSA, exact EASE and ItemKNN, up to a million items.

Every measured run is a fresh process on the same split of the same data, one run
each, on this machine (each library's worker imports only that library and NumPy/SciPy:
``past_n2_accel.py``, ``past_n2_sansa.py``):

* **Densities.** On MovieLens 100k and the 100k-user × 10k-item synthetic log, at
  three densities (stored weights / n_items², the same for both models: SANSA's
  ``weight_matrix_density`` is half of it, as it stores two factors), SparseEASE and
  SANSA with λ tuned for each on one validation split (and SANSA's factoriser, ICF
  or CHOLMOD, chosen there too), and exact EASE (λ tuned the same way). The measured
  fit of each is repeated ``FIT_REPEATS`` times in its process and the median reported.
* **Scale.** Synthetic logs of 2 users and 50 drawn interactions per item
  (power-law popularity, :func:`accel.data.synthetic.synthetic_matrix`) at 10k, 20k,
  50k, 200k and 1M items: SparseEASE (100 weights per item), SANSA (ICF, the same
  model size), ItemKNN cosine (k = 100) and exact EASE while it fits (it is refused
  from the first size whose n² buffer exceeds memory; the refusal is recorded).
  At 1M items top-20 is timed for 100k users.

Splits hold out 20% of each user's items at random (seed 0; the validation split
holds out 20% of the rest, seed 1). Recall@20, NDCG@20 and P@10 are accel's
metrics on the same top-20 lists; the standard error of Recall@20 is over the test
users. SANSA is installed in its own environment (``bench/.envs/sansa``) by this
script, or skipped with the reason recorded. Writes ``bench/results/past-n2/``
(``summary.json``, ``runs.json``, ``scale.png``). Run from the repository root:
``python bench/past_n2.py`` (``--help``; about an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from past_n2_data import save_matrix

from accel.bench.report import machine_info, write_json
from accel.metrics import evaluate, hits_matrix

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "past-n2"
SANSA_ENV = HERE / ".envs" / "sansa"
SANSA_WORKER = HERE / "past_n2_sansa.py"
ACCEL_WORKER = HERE / "past_n2_accel.py"
#: SANSA 1.1 builds scikit-sparse from source; 0.5 needs SuiteSparse 7, older systems ship 5.
SANSA_PACKAGES = ("scikit-sparse>=0.4.8,<0.5", "sansa==1.1.0")
K = 20
#: Fits of each measured model in the densities experiment (its median is reported): one fit of
#: ml-100k takes a fraction of a second, where a shared machine's noise is of the same order.
FIT_REPEATS = 5
DENSITIES = {"ml-100k": (0.02, 0.06, 0.12), "synthetic-100k-10k": (0.002, 0.005, 0.02)}
#: λ is tuned on validation up to 50k items and carried to the larger sizes.
SCALE_ITEMS = (10_000, 50_000, 1_000_000, 200_000)
SCALE_WEIGHTS = 100  # weights per item at every scale
EASE_LARGEST = 10_000  # exact EASE is fitted up to this size; beyond, it is refused or projected (n³)
#: Validation users ranked per tuning trial (a random sample where there are more).
VALID_USERS = 10_000
#: Users ranked (and scored) from 200k items up: a random sample of the test users.
SCORED_USERS_LARGE = {200_000: 50_000, 1_000_000: 100_000}
SANSA_LARGEST = 200_000
SANSA_NOT_RUN = (
    "its ICF factorises the whole sparse XᵀX: not attempted past 200k items on a shared 24 GiB machine"
)
L2_GRID = (100.0, 200.0, 500.0, 1000.0, 2000.0)
SANSA_ICF_L2_GRID = (10.0, 50.0, 200.0, 1000.0)
SANSA_CHOLMOD_L2_GRID = (200.0, 500.0, 1000.0, 2000.0)
#: SANSA's CHOLMOD (exact Cholesky, then sparsified) is tried up to this many items, as its README
#: advises it for small dense Grams; on the 10k-item log one fit took 230-420 s against 3-6 s for ICF.
CHOLMOD_MAX_ITEMS = 5_000
#: SparseEASE's λ at a size that is not tuned: the best on validation at 10k items (runs.json).
SCALE_L2 = 200.0
SCALE_L2_GRID = (50.0, 100.0, 200.0, 500.0)
SCALE_SANSA_L2_GRID = (10.0, 50.0, 200.0, 1000.0)
SANSA_TUNED_UP_TO = 50_000
RAM_BYTES = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ---- data ------------------------------------------------------------------------------
def holdout(X: sp.csr_matrix, fraction: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``round(fraction · n_u)`` random items of each user to test (at least one stays in train)."""
    X = sp.csr_matrix(X)
    counts = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), counts)
    key = np.random.default_rng(seed).random(X.nnz)
    order = np.lexsort((key, rows))
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - X.indptr[rows[order]]
    n_test = np.minimum(np.round(counts * fraction).astype(np.int64), np.maximum(counts - 1, 0))
    is_test = rank >= (counts - n_test)[rows]
    parts = []
    for mask in (~is_test, is_test):
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[mask], minlength=X.shape[0]))))
        parts.append(sp.csr_matrix((np.ones(mask.sum(), np.float32), X.indices[mask], indptr), shape=X.shape))
    return parts[0], parts[1]


def load_dataset(name: str, shared: Path) -> sp.csr_matrix:
    from accel.bench.datasets import movielens, synthetic
    from accel.data.synthetic import synthetic_matrix

    if name == "ml-100k":
        return movielens(shared / "ml-100k").interactions.matrix()
    if name == "synthetic-100k-10k":
        return synthetic(100_000, 10_000).interactions.matrix()
    n_items = int(name.split("-")[1])
    return synthetic_matrix(2 * n_items, n_items, n_interactions=50 * n_items, seed=0)


# ---- one run: a fresh process ------------------------------------------------------------
def run_process(command: list[str], log: Path) -> str | None:
    """Run ``command``; ``None`` when it succeeded, else the tail of its output."""
    with open(log, "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code == 0:
        return None
    return f"exit code {code}: " + " | ".join(log.read_text().strip().splitlines()[-3:])


class Runner:
    """Starts the fresh processes and reads back their top-k lists and measurements."""

    def __init__(self, work: Path, sansa_python: str | None) -> None:
        self.work = work
        self.sansa_python = sansa_python
        self.count = 0

    def _prefix(self) -> Path:
        self.count += 1
        return self.work / f"run{self.count:03d}"

    def accel(self, data: Path, model: str, params: dict, l2s: list[float] | None, repeats: int = 1) -> dict:
        prefix = self._prefix()
        command = [sys.executable, str(ACCEL_WORKER), "--data", str(data), "--model", model]
        command += ["--params", json.dumps(params), "--out", str(prefix), "--k", str(K)]
        command += ["--l2", *map(str, l2s)] if l2s else []
        command += ["--repeats", str(repeats)]
        return self._read(prefix, run_process(command, prefix.with_suffix(".log")))

    def sansa(self, data: Path, density: float, factorizer: str, l2s: list[float], repeats: int = 1) -> dict:
        if self.sansa_python is None:
            return {"runs": [], "error": "SANSA is not installed"}
        prefix = self._prefix()
        command = [self.sansa_python, str(SANSA_WORKER), "--data", str(data), "--density", str(density)]
        command += ["--factorizer", factorizer, "--l2", *map(str, l2s), "--out", str(prefix), "--k", str(K)]
        command += ["--repeats", str(repeats)]
        return self._read(prefix, run_process(command, prefix.with_suffix(".log")))

    @staticmethod
    def _read(prefix: Path, error: str | None) -> dict:
        if error is not None:
            return {"runs": [], "error": error}
        result = json.loads(Path(f"{prefix}.json").read_text())
        for i, run in enumerate(result["runs"]):
            if run.get("status", "ok") == "ok":
                run["recs"] = np.load(f"{prefix}-{i}.npy")
        return result


def scores(recs: np.ndarray, target: tuple[sp.csr_matrix, np.ndarray]) -> dict[str, float]:
    """Recall@20, NDCG@20, P@10 and Recall@20's standard error over the users with a test item.

    ``target`` is the test rows and the item of each column the models were fitted on.
    """
    test, items = target
    recs = np.where(recs >= 0, items[np.maximum(recs, 0)], -1)
    metrics = evaluate(recs, test, ks=(10, 20), metrics=["precision", "recall", "ndcg"])
    users = np.diff(test.indptr) > 0
    hits = hits_matrix(recs[users][:, :K], test[users]).sum(axis=1)
    recall = hits / np.minimum(K, np.diff(test[users].indptr))
    return {
        "recall20": metrics["recall@20"],
        "recall20_se": float(recall.std(ddof=1) / np.sqrt(recall.size)),
        "ndcg20": metrics["ndcg@20"],
        "p10": metrics["precision@10"],
    }


def best(result: dict, test: tuple[sp.csr_matrix, np.ndarray]) -> tuple[float | None, list[dict]]:
    """The λ of highest validation Recall@20 among ``result``'s runs, and every λ's score."""
    table = [
        {"l2": run["l2"], **scores(run["recs"], test)}
        for run in result["runs"]
        if run.get("status", "ok") == "ok"
    ]
    if not table:
        return None, table
    return max(table, key=lambda row: row["recall20"])["l2"], table


def measured(result: dict, test: tuple[sp.csr_matrix, np.ndarray], **labels: Any) -> dict:
    """One measured run as a row of runs.json."""
    if result.get("error"):
        return {**labels, "status": "failed", "reason": result["error"]}
    run = result["runs"][0]
    if run.get("status", "ok") != "ok":
        return {**labels, "status": run["status"], "reason": run["reason"]}
    keep = {k: v for k, v in run.items() if k != "recs"}
    before = {"rss_before_fit_mib": result["rss_before_fit_mib"]} if "rss_before_fit_mib" in result else {}
    return {**labels, "status": "ok", **keep, **before, **scores(run.pop("recs"), test)}


# ---- SANSA's environment -------------------------------------------------------------------
def ensure_sansa() -> tuple[str | None, str]:
    """The SANSA environment's Python (created on first use), or ``None`` and why it cannot be."""
    python = SANSA_ENV / "bin" / "python"
    check = [str(python), "-c", "import sansa, sksparse.cholmod"]
    if python.exists() and subprocess.call(check, stderr=subprocess.DEVNULL) == 0:
        return str(python), "installed"
    log = HERE / ".envs" / "sansa-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        error = run_process([sys.executable, "-m", "venv", str(SANSA_ENV)], log)
        if error:
            return None, f"could not create {SANSA_ENV}: {error}"
    install = [str(python), "-m", "pip", "install", "-q", *SANSA_PACKAGES]
    error = run_process(install, log)
    if error and not Path("/usr/include/suitesparse/cholmod.h").exists() and os.geteuid() == 0:
        apt = run_process(["apt-get", "install", "-y", "libsuitesparse-dev"], log.with_suffix(".apt.log"))
        error = f"SuiteSparse headers missing and apt-get failed: {apt}" if apt else run_process(install, log)
    if error:
        return None, f"pip install {' '.join(SANSA_PACKAGES)} failed: {error}"
    return str(python), "installed now"


# ---- the experiments --------------------------------------------------------------------------
class Experiment:
    """One dataset's splits, written once for every process that reads them."""

    def __init__(
        self,
        name: str,
        X: sp.csr_matrix,
        work: Path,
        scored_users: int | None = None,
        validation: bool = True,
    ) -> None:
        self.name = name
        train, test = holdout(X, 0.2, seed=0)
        vtrain, vtest = holdout(train, 0.2, seed=1) if validation else (train[:0], test[:0])
        users = np.nonzero(np.diff(test.indptr) > 0)[0]
        vusers = np.nonzero(np.diff(vtest.indptr) > 0)[0]
        if vusers.size > VALID_USERS:  # tuning ranks a sample of the validation users
            vusers = np.sort(np.random.default_rng(3).choice(vusers, VALID_USERS, replace=False))
        if scored_users is not None and users.size > scored_users:
            users = np.sort(np.random.default_rng(2).choice(users, scored_users, replace=False))
        # Models see only the items of their training part (SANSA's ICF fails on empty columns).
        items = np.nonzero(np.diff(train.tocsc().indptr) > 0)[0]
        vitems = np.nonzero(np.diff(vtrain.tocsc().indptr) > 0)[0]
        self.test = (test[users], items)
        self.vtest = (vtest[vusers], vitems)
        self.data = save_matrix(work / f"{name}.npz", train[:, items].tocsr(), users)
        self.vdata = save_matrix(work / f"{name}-valid.npz", vtrain[:, vitems].tocsr(), vusers)
        #: The dataset's name and sizes, copied into every row measured on it.
        self.info: dict[str, Any] = {
            "dataset": name,
            "users": int(X.shape[0]),
            "items": int(X.shape[1]),
            "interactions": int(X.nnz),
            "train_interactions": int(train.nnz),
            "train_items": int(items.size),
            "scored_users": int(users.size),
        }


def tune_accel(runner: Runner, exp: Experiment, model: str, params: dict, grid: tuple) -> tuple[float, list]:
    l2, table = best(runner.accel(exp.vdata, model, params, list(grid)), exp.vtest)
    return (l2 if l2 is not None else grid[len(grid) // 2]), table


def tune_sansa(
    runner: Runner, exp: Experiment, density: float, factorizers: tuple, icf_grid: tuple = SANSA_ICF_L2_GRID
) -> tuple:
    """SANSA's best (factoriser, λ) on the validation split, and every trial's score."""
    trials: list[dict[str, Any]] = []
    choice: tuple[str | None, float | None, float] = (None, None, -1.0)
    for factorizer in factorizers:
        grid = icf_grid if factorizer == "icf" else SANSA_CHOLMOD_L2_GRID
        result = runner.sansa(exp.vdata, density / 2, factorizer, list(grid))
        l2, table = best(result, exp.vtest)
        trials += [{"factorizer": factorizer, **row} for row in table]
        trials += [{"factorizer": factorizer, "error": result["error"]}] if result.get("error") else []
        top = max((row["recall20"] for row in table), default=-1.0)
        if l2 is not None and top > choice[2]:
            choice = (factorizer, l2, top)
    return choice[0], choice[1], trials


def densities_experiment(runner: Runner, exp: Experiment, densities: tuple) -> list[dict]:
    rows = []
    l2, table = tune_accel(runner, exp, "ease", {"backend": "numpy"}, L2_GRID)
    rows.append(
        measured(runner.accel(exp.data, "ease", {"backend": "numpy"}, [l2], FIT_REPEATS), exp.test,
                 **exp.info, model="EASE", density=1.0, tuning=table)
    )  # fmt: skip
    for density in densities:
        params = {"density": density, "backend": "numpy"}
        l2, table = tune_accel(runner, exp, "sparse_ease", params, L2_GRID)
        rows.append(
            measured(runner.accel(exp.data, "sparse_ease", params, [l2], FIT_REPEATS), exp.test,
                     **exp.info, model="SparseEASE", density=density, tuning=table)
        )  # fmt: skip
        factorizers = ("icf", "cholmod") if exp.info["train_items"] <= CHOLMOD_MAX_ITEMS else ("icf",)
        factorizer, sl2, trials = tune_sansa(runner, exp, density, factorizers)
        result = {"error": trials}
        if factorizer:
            result = runner.sansa(exp.data, density / 2, factorizer, [sl2], FIT_REPEATS)
        rows.append(
            measured(result, exp.test, **exp.info, model="SANSA", density=density,
                     factorizer=factorizer, tuning=trials)
        )  # fmt: skip
    return rows


def scale_experiment(runner: Runner, exp: Experiment, state: dict[str, Any]) -> list[dict]:
    """SparseEASE, ItemKNN, SANSA and exact EASE at one catalogue size (100 weights per item).

    ``state`` carries SparseEASE's and SANSA's λ (tuned on validation up to
    ``SANSA_TUNED_UP_TO`` items) and exact EASE's fit seconds (for the n³ projection)
    from size to size.
    """
    n = exp.info["items"]
    density = SCALE_WEIGHTS / n
    params = {"density": density, "backend": "numpy"}
    table: list = []
    if n <= SANSA_TUNED_UP_TO:
        l2, table = tune_accel(runner, exp, "sparse_ease", params, SCALE_L2_GRID)
        state["l2"] = l2
    rows = [
        measured(runner.accel(exp.data, "sparse_ease", params, [state.get("l2", SCALE_L2)]), exp.test,
                 **exp.info, model="SparseEASE", density=density, tuning=table)
    ]  # fmt: skip
    knn = {"similarity": "cosine", "k": SCALE_WEIGHTS, "shrink": 10.0, "backend": "numpy"}
    rows.append(
        measured(runner.accel(exp.data, "itemknn", knn, None), exp.test, **exp.info, model="ItemKNN cosine")
    )
    if n <= SANSA_LARGEST:
        trials: list = []
        if n <= SANSA_TUNED_UP_TO:
            _, sl2, trials = tune_sansa(runner, exp, density, ("icf",), SCALE_SANSA_L2_GRID)
            state["sansa_l2"] = sl2 if sl2 is not None else state.get("sansa_l2")
        sl2 = state.get("sansa_l2") or SCALE_SANSA_L2_GRID[1]
        rows.append(
            measured(runner.sansa(exp.data, density / 2, "icf", [sl2]), exp.test,
                     **exp.info, model="SANSA", density=density, factorizer="icf", tuning=trials)
        )  # fmt: skip
    else:
        rows.append({**exp.info, "model": "SANSA", "status": "not run", "reason": SANSA_NOT_RUN})
    fitted = state.setdefault("ease_fit_s", {})
    if n <= EASE_LARGEST or n * n * 4 > RAM_BYTES or not fitted:
        rows.append(
            measured(runner.accel(exp.data, "ease", {"backend": "numpy"}, [SCALE_L2]), exp.test,
                     **exp.info, model="EASE")
        )  # fmt: skip
        if rows[-1]["status"] == "ok":
            fitted[n] = rows[-1]["fit_s"]
    else:
        largest = max(fitted)
        projected = fitted[largest] * (n / largest) ** 3
        rows.append(
            {**exp.info, "model": "EASE", "status": "not run", "projected_fit_s": projected,
             "reason": f"projected {projected / 60:.0f} min from the {largest:,}-item fit (n³)"}
        )  # fmt: skip
    return rows


# ---- the outputs ----------------------------------------------------------------------------------
SUMMARY_KEYS = ("recall20", "ndcg20", "fit_s", "peak_rss_mib")


def summary(rows: list[dict]) -> dict[str, Any]:
    """summary.json: SparseEASE against SANSA at each density, exact EASE, and the million-item run."""
    ok = [r for r in rows if r.get("status") == "ok"]
    out: dict[str, Any] = {"densities": [], "recall20_exact_ease": {}}
    for dataset in DENSITIES:
        for density in DENSITIES[dataset]:
            ours = [r for r in ok if r.get("experiment") == "densities" and r["dataset"] == dataset
                    and r["model"] == "SparseEASE" and r["density"] == density]  # fmt: skip
            theirs = [r for r in ok if r.get("experiment") == "densities" and r["dataset"] == dataset
                      and r["model"] == "SANSA" and r["density"] == density]  # fmt: skip
            if not ours:
                continue
            row: dict[str, Any] = {"dataset": dataset, "density": density}
            for key in SUMMARY_KEYS:
                row[key] = ours[0][key]
                row[f"{key}_sansa"] = theirs[0][key] if theirs else None
            out["densities"].append(row)
        ease = [r for r in ok if r.get("experiment") == "densities" and r["dataset"] == dataset
                and r["model"] == "EASE"]  # fmt: skip
        if ease:
            out["recall20_exact_ease"][dataset] = ease[0]["recall20"]
    million = [r for r in ok if r["model"] == "SparseEASE" and r["items"] == 1_000_000]
    if million:
        out["fit_1m_items_s"] = million[0]["fit_s"]
        out["peak_rss_1m_items_mib"] = million[0]["peak_rss_mib"]
        out["recall20_1m_items"] = million[0]["recall20"]
    return out


def plot(rows: list[dict], path: Path, ram_bytes: int) -> None:
    """Fit seconds and peak RSS against catalogue size, one line per model (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = [r for r in rows if r.get("experiment") == "scale"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model, marker in (("EASE", "s"), ("SparseEASE", "o"), ("SANSA", "^"), ("ItemKNN cosine", "D")):
        done = sorted((r["items"], r["fit_s"], r["peak_rss_mib"]) for r in scale
                      if r["model"] == model and r.get("status") == "ok")  # fmt: skip
        if done:
            n, fit, rss = zip(*done, strict=True)
            axes[0].plot(n, fit, marker=marker, label=model)
            axes[1].plot(n, np.array(rss) / 1024, marker=marker, label=model)
        refused = sorted(r["items"] for r in scale if r["model"] == model and r.get("status") == "refused")
        if refused:
            need = [r for r in scale if r["model"] == model and r.get("status") == "refused"]
            axes[1].scatter(refused, [n**2 * 4 / 2**30 for n in refused], marker="x", color="black",
                            label=f"{model} refused (its n² buffer)" if need else None, zorder=3)  # fmt: skip
    axes[1].axhline(ram_bytes / 2**30, color="grey", linestyle="--", label="this machine's RAM")
    axes[0].set(xscale="log", yscale="log", xlabel="items", ylabel="fit seconds", title="Fit time")
    axes[1].set(xscale="log", yscale="log", xlabel="items", ylabel="peak RSS (GiB)", title="Peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("2 users and ~50 interactions per item; 100 weights per item (2 cores, shared machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(folder: Path, payload: dict[str, Any]) -> None:
    """runs.json, summary.json and scale.png of ``payload`` (its machine, commands and runs)."""
    write_json(folder / "runs.json", payload)
    write_json(folder / "summary.json", summary(payload["runs"]))
    plot(payload["runs"], folder / "scale.png", payload["machine"].get("ram_bytes", 0))


def merge_folders(source: Path, into: Path) -> None:
    """Rows of ``source``'s datasets replace those of ``into``; the commands that made the rows kept
    are kept, each new one with the machine (and commit) it ran on."""
    new, old = (json.loads((folder / "runs.json").read_text()) for folder in (source, into))
    datasets = {r["dataset"] for r in new["runs"]}
    runs = [r for r in old["runs"] if r["dataset"] not in datasets] + new["runs"]
    kept = [c for c in old.get("commands", []) if not set(c["datasets"]) <= datasets]
    added = [{**c, "merged_from": str(source), "machine": new["machine"]} for c in new.get("commands", [])]
    commands = kept + added
    write_outputs(into, {**old, "commands": commands, "runs": runs})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    merge = sub.add_parser("merge", help="merge the runs of another results folder into --into")
    merge.add_argument("folder", type=Path, help="a results folder written by an earlier run")
    merge.add_argument("--into", type=Path, default=RESULTS)
    parser.add_argument("--only", choices=("densities", "scale"), help="run one experiment only")
    parser.add_argument("--datasets", nargs="+", default=list(DENSITIES), choices=tuple(DENSITIES))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SCALE_ITEMS), help="scale sizes (items)")
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "merge":
        merge_folders(args.folder, args.into)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    sansa_python, sansa_status = ensure_sansa()
    print(f"SANSA: {sansa_status}", flush=True)
    machine = machine_info()
    previous = args.out / "runs.json"
    ran = {"densities", "scale"} if args.only is None else {args.only}
    # Rows of the datasets run now replace earlier ones; other datasets' rows are kept.
    running = (set(args.datasets) if "densities" in ran else set()) | (
        {f"scale-{n}" for n in args.sizes} if "scale" in ran else set()
    )
    earlier = json.loads(previous.read_text()) if previous.exists() else {"runs": []}
    kept = [r for r in earlier["runs"] if r["dataset"] not in running]
    commands = [
        c for c in earlier.get("commands", []) if not c.get("datasets") or set(c["datasets"]) - running
    ]
    commands.append({"datasets": sorted(running), "command": "python " + " ".join(sys.argv)})
    rows: list[dict] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def save() -> None:
        payload = {
            "machine": machine,
            "started": started,
            "commands": commands,
            "sansa": sansa_status,
        }
        write_json(args.out / "runs.json", {**payload, "runs": kept + rows})

    with tempfile.TemporaryDirectory(prefix="past-n2-") as tmp:
        runner = Runner(Path(tmp), sansa_python)
        if args.only in (None, "densities"):
            for name in args.datasets:
                densities = DENSITIES[name]
                exp = Experiment(name, load_dataset(name, args.shared), Path(tmp))
                rows += [
                    {"experiment": "densities", **r} for r in densities_experiment(runner, exp, densities)
                ]
                save()
                print(f"{name}: done", flush=True)
        if args.only in (None, "scale"):
            # Exact EASE's fits from earlier runs feed the n³ projection of the sizes it is not run at.
            earlier_ease = {
                r["items"]: r["fit_s"] for r in kept if r["model"] == "EASE" and r["status"] == "ok"
            }
            state: dict[str, Any] = {
                "ease_fit_s": {n: t for n, t in earlier_ease.items() if n <= EASE_LARGEST}
            }
            for n in args.sizes:
                scored = SCORED_USERS_LARGE.get(n)
                X = load_dataset(f"scale-{n}", args.shared)
                exp = Experiment(f"scale-{n}", X, Path(tmp), scored, validation=n <= SANSA_TUNED_UP_TO)
                del X
                rows += [{"experiment": "scale", **r} for r in scale_experiment(runner, exp, state)]
                save()
                print(f"scale {n:,}: done", flush=True)
    write_json(args.out / "summary.json", summary(kept + rows))
    plot(kept + rows, args.out / "scale.png", machine.get("ram_bytes", 0))


if __name__ == "__main__":
    main()
