"""How far can a learned gap filler get below biharmonic inpainting on the main job's HadISST holes?

The main job's own data (HadISST, August 2012, 1°; blocked region split; the four hole sets of 02),
3 seeds (each its own split, holes and weights). On the same test patches and holes, RMSE in the
holes (°C) of:

- ``biharmonic``, ``local_mean``: the classical fillers of 04 (untouched);
- ``unet``: the seed U-Net as the main job trains it (``Run(...).step("train")``);
- ``ridge``: the best *linear* correction of the biharmonic fill from each hidden pixel's
  neighbourhood (differences to it within 6 cells, land, distances to land and to data,
  latitude, the fill itself), λ chosen on the validation patches;
- ``boosted``: the same features, gradient-boosted trees (scikit-learn), number of trees chosen
  on the validation patches;
- ``cnn``: the levers of the issue together: geonb's DINCAE U-Net correcting the biharmonic fill
  (zero-initialised head: it starts as biharmonic), fed the fill, the data / hole / land masks,
  the distance to data and the latitude; fresh random holes of every shape on crops of the
  training blocks at a stride of 2 cells; the eight flips/rotations; Gaussian NLL on the hidden
  pixels (mean + error variance); the step with the best validation RMSE kept; test-time average
  over the eight flips/rotations; 1σ coverage of its error bars on the test holes;
- ``cnn_mse``: the same trained on the squared error of the mean alone (the NLL gives less weight to
  the pixels far from data, which dominate the RMSE).

    python benchmarks/gapfill_ceiling.py benchmarks/results/gapfill_hadisst.csv [--seeds 3]

Writes the per-seed rows (CSV) and a markdown summary (.md) beside it: mean ± std over seeds of
every method's RMSE and of its ratio to biharmonic, against the 0.90 target of the issue.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import distance_transform_edt
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from geonb import Run, baselines
from geonb import holes as holesets
from geonb.data import load_field
from geonb.losses import gaussian_nll
from geonb.methods.gaussian_nll import GaussianNLL
from geonb.metrics.probabilistic import distance_to_observed, score
from geonb.registry import NETWORKS
from geonb.tasks.inpaint import infer, steps as inpaint_steps
from geonb.tiling import cut_patches

RADIUS = 6  # the neighbourhood the pixel methods see (cells)
TARGET = 0.90  # the ratio to biharmonic


# ---------------------------------------------------------------- samples and their biharmonic fill
def fill(args):
    """Biharmonic fill of one (truth, hidden) pair (observed pixels kept, land NaN), in a worker process."""
    truth, hidden = args
    return baselines.biharmonic(np.where(hidden, np.nan, truth), hidden)


def samples(patches, sets, split, pool) -> dict:
    """Per hole set: truth, hidden, latitude rows and biharmonic composite of one split."""
    out = {}
    for kind, (index, masks) in sets.items():
        sel = patches.split.values[index] == split
        truth, hidden = patches.field.values[index[sel]], masks[sel]  # holes lie on finite cells only
        out[kind] = {"truth": truth, "hidden": hidden, "lat": patches.lat.values[index[sel]],
                     "bh": np.stack(pool.map(fill, list(zip(truth, hidden))))}
    return out


# ---------------------------------------------------------------- pixel methods (ridge, boosted)
def pixel_features(s: dict) -> tuple[np.ndarray, np.ndarray]:
    """Features of every hidden pixel and its target (truth − biharmonic), for one hole set."""
    bh, hidden, truth = s["bh"], s["hidden"], s["truth"]
    land = ~np.isfinite(truth)
    pad = ((0, 0), (RADIUS, RADIUS), (RADIUS, RADIUS))
    window = (2 * RADIUS + 1,) * 2
    values = sliding_window_view(np.pad(np.nan_to_num(bh), pad, mode="edge"), window, axis=(1, 2))[hidden]
    lands = sliding_window_view(np.pad(land, pad), window, axis=(1, 2))[hidden]  # beyond the edge: unknown, not land
    diffs = ((values - values[:, RADIUS:RADIUS + 1, RADIUS:RADIUS + 1]) * ~lands)[:, ::2, ::2]
    far = max(bh.shape[1:])  # no land in the patch: as far as the patch is wide
    to_land = np.stack([np.minimum(distance_transform_edt(~x), far) if x.any() else np.full(x.shape, far)
                        for x in land])[hidden]
    to_data = distance_to_observed(~hidden & ~land)[hidden]
    lat = np.broadcast_to(s["lat"][:, :, None], bh.shape)[hidden]
    x = np.column_stack([diffs.reshape(len(diffs), -1), lands.mean((1, 2)), to_land, to_data, lat, bh[hidden]])
    return x, (truth - bh)[hidden]


def stack_features(split: dict) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(pixel_features(s) for s in split.values()))
    return np.concatenate(xs), np.concatenate(ys)


def pixel_method(make, choices, train, val, test) -> tuple[dict, str]:
    """Fit ``make(choice)`` on the training pixels for each choice; keep the best on validation pixels;
    return its test composites by hole set."""
    xt, yt = stack_features(train)
    xv, yv = stack_features(val)
    best, best_rmse = None, np.inf
    for choice in choices:
        model = make(choice).fit(xt, yt)
        rmse = float(np.sqrt(np.mean((model.predict(xv) - yv) ** 2)))
        if rmse < best_rmse:
            best, best_rmse, best_choice = model, rmse, choice
    out = {}
    for kind, s in test.items():
        x, _ = pixel_features(s)
        filled = s["bh"].copy()
        filled[s["hidden"]] += best.predict(x)
        out[kind] = filled
    return out, str(best_choice)


# ---------------------------------------------------------------- the CNN with every lever
def net_inputs(norm, bh, hidden, lat) -> np.ndarray:
    """(N, 6, H, W): biharmonic composite (normalised, land 0), data, hole and land masks,
    distance to data / 10 cells, latitude / 90°."""
    land = ~np.isfinite(bh) & ~hidden
    to_data = distance_to_observed(~hidden & ~land) / 10
    lat = np.broadcast_to(lat[:, :, None] / 90, bh.shape)
    return np.stack([np.nan_to_num(norm(bh)), ~hidden & ~land, hidden, to_data, land, lat], 1).astype("float32")


def training_pool(run, patches, sets, n: int, seed: int, pool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` fresh samples: a random crop of the training blocks (stride 2), a random hole set, a fresh draw."""
    field = xr.open_dataset(run.path("field.nc")).field.load()
    split = xr.open_dataset(run.path("split.nc")).split.load()
    crops = cut_patches(field, split, run["patch"], run["patch"] - 2)
    crops = crops.isel(patch=np.nonzero(crops.split.values == "train")[0])
    rng = np.random.default_rng(10_000 + seed)
    kinds = list(sets)
    if "clouds" in kinds:
        cube = load_field(run["cloud_source"])
        clouds = holesets.cloud_library(cube, np.isfinite(cube.values).any(0), run["patch"], 200, rng)
    pick = rng.integers(crops.sizes["patch"], size=n)
    truth = crops.field.values[pick]
    valid = np.isfinite(truth)
    hidden = np.stack([clouds[rng.integers(len(clouds))] & v if k == "clouds" else holesets.simulate(v, k, rng)
                       for k, v in zip(rng.choice(kinds, size=n), valid)])
    bh = np.stack(pool.map(fill, list(zip(truth, hidden))))
    return truth, hidden, bh, crops.lat.values[pick]


def dihedral(t: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the eight flips/rotations of (…, H, W); ``undo`` inverts it."""
    if k & 4:
        t = t.transpose(-1, -2)
    return torch.flip(t, [d for d, bit in ((-1, 1), (-2, 2)) if k & bit]) if k & 3 else t


def undo(t: torch.Tensor, k: int) -> torch.Tensor:
    t = torch.flip(t, [d for d, bit in ((-1, 1), (-2, 2)) if k & bit]) if k & 3 else t
    return t.transpose(-1, -2) if k & 4 else t


def predict_tta(net, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean and variance (normalised) over the eight flips/rotations, combined as geonb combines a
    Gaussian model's snapshots (mean of means; mean of variances + variance of means)."""
    with torch.no_grad():
        outs = [undo(net(dihedral(x, k)), k) for k in range(8)]
    return GaussianNLL.combine([torch.cat([x[:, :1] + o[:, :1], o[:, 1:]], 1).numpy() for o in outs])


def train_cnn(norm, pool_data, val, steps: int, batch: int, seed: int, loss_name: str):
    """geonb's DINCAE U-Net correcting the biharmonic fill; ``loss_name`` ``nll`` (mean + log-variance,
    Gaussian NLL) or ``mse`` (the mean alone); the step with the best validation RMSE is kept."""
    truth, hidden, bh, lat = pool_data
    x = torch.from_numpy(net_inputs(norm, bh, hidden, lat))
    y = torch.from_numpy(np.nan_to_num(norm(truth)).astype("float32"))
    w = torch.from_numpy(hidden & np.isfinite(truth))
    vx = {k: torch.from_numpy(net_inputs(norm, s["bh"], s["hidden"], s["lat"])) for k, s in val.items()}
    torch.manual_seed(seed)
    net = NETWORKS.build("dincae", in_channels=x.shape[1])
    torch.nn.init.zeros_(net.head.weight)  # a correction of the biharmonic fill, starting from none
    torch.nn.init.zeros_(net.head.bias)
    with torch.no_grad():  # log-variance starts at the biharmonic fill's own error variance, not at σ = 1 (10 °C)
        net.head.bias[1] = float(np.log(np.mean((y - x[:, 0])[w].numpy() ** 2)))
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    g = torch.Generator().manual_seed(seed)
    best, best_rmse, best_step, loss = None, np.inf, 0, torch.tensor(np.nan)
    for step in range(steps + 1):  # step 0 scores the untrained correction: none, the biharmonic fill itself
        if step:
            idx = torch.randint(len(x), (batch,), generator=g)
            k = int(torch.randint(8, (1,), generator=g))
            xb, yb, wb = (dihedral(t[idx], k) for t in (x, y, w))
            out = net(xb)
            mean = xb[:, 0] + out[:, 0]
            if loss_name == "nll":  # hidden pixels only: the target is NaN elsewhere
                loss = gaussian_nll(torch.stack([mean, out[:, 1]], 1), torch.where(wb, yb, torch.nan))
            else:
                loss = ((mean - yb)[wb] ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step % 100 == 0 or step == steps:
            net.eval()
            with torch.no_grad():
                errs = np.concatenate([((norm.inverse(xv[:, 0] + net(xv)[:, 0]).numpy() - val[k]["truth"])
                                        [val[k]["hidden"]]) for k, xv in vx.items()])
            net.train()
            rmse = float(np.sqrt(np.mean(errs ** 2)))
            if rmse < best_rmse:
                best, best_rmse, best_step = copy.deepcopy(net.state_dict()), rmse, step
            print(f"  cnn ({loss_name}) step {step}/{steps}: loss {loss.item():.3f}, val rmse {rmse:.4f} °C "
                  f"(best {best_rmse:.4f} at {best_step})", flush=True)
    net.load_state_dict(best)
    return net.eval(), best_step


# ---------------------------------------------------------------- one seed
def run_seed(root: Path, seed: int, args, pool) -> list[dict]:
    run = Run(root / f"seed{seed}", arch="unet", seed=seed)
    run.require("simulate")  # 01 and 02 as the main job makes them
    t0 = time.perf_counter()
    run.step("train")  # the seed U-Net, as the main job trains it
    unet_s = time.perf_counter() - t0
    patches, norm = inpaint_steps._load_patches(run)
    sets = inpaint_steps.load_holes(run)
    data = {s: samples(patches, sets, s, pool) for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    pool_data = training_pool(run, patches, sets, args.pool, seed, pool)
    pool_s = time.perf_counter() - t0
    test = data["test"]
    filled, seconds, notes, sigma = {}, {"unet": unet_s}, {}, {}
    unet = infer.trained_models(run)["unet"]
    filled["unet"] = {k: infer.composite(s["truth"], s["hidden"], infer.fill_holes(unet, s["truth"], s["hidden"]))
                      for k, s in test.items()}
    filled["biharmonic"] = {k: s["bh"] for k, s in test.items()}
    filled["local_mean"] = {k: baselines.local_mean(np.where(s["hidden"], np.nan, s["truth"]), s["hidden"])
                            for k, s in test.items()}
    for name, make, choices in (
            ("ridge", lambda lam: make_pipeline(StandardScaler(), Ridge(alpha=lam)), (1e-2, 1, 100, 1e4)),
            ("boosted", lambda n: HistGradientBoostingRegressor(max_iter=n, learning_rate=0.05, l2_regularization=1.0,
                                                                 early_stopping=False, random_state=seed),
             (50, 150, 400))):
        t0 = time.perf_counter()
        filled[name], notes[name] = pixel_method(make, choices, data["train"], data["val"], test)
        seconds[name] = time.perf_counter() - t0
        print(f"  {name}: chose {notes[name]} on validation", flush=True)
    for name, loss_name in (("cnn", "nll"), ("cnn_mse", "mse")):  # train_s: training + making the pool
        t0 = time.perf_counter()
        net, best_step = train_cnn(norm, pool_data, data["val"], args.steps, args.batch, seed, loss_name)
        seconds[name] = time.perf_counter() - t0 + pool_s
        notes[name] = f"best step {best_step}"
        filled[name] = {}
        for k, s in test.items():
            pred = predict_tta(net, torch.from_numpy(net_inputs(norm, s["bh"], s["hidden"], s["lat"])))
            filled[name][k] = infer.composite(s["truth"], s["hidden"], norm.inverse(pred["mean"]))
            if loss_name == "nll":
                sigma[k] = np.sqrt(pred["variance"]) * norm.std
    rows = []
    for kind, s in test.items():
        base = score(s["truth"], filled["biharmonic"][kind], s["hidden"])["rmse"]
        for method, by_set in filled.items():
            r = score(s["truth"], by_set[kind], s["hidden"], sigma.get(kind) if method == "cnn" else None)
            rows.append({"seed": seed, "hole set": kind, "method": method, "n": r["n"], "rmse": r["rmse"],
                         "ratio_to_biharmonic": r["rmse"] / base, "cover_1sigma": r.get("cover_1sigma", np.nan),
                         "train_s": seconds.get(method, 0.0), "chosen_on_val": notes.get(method, "")})
    print(pd.DataFrame(rows).pivot(index="method", columns="hole set", values="ratio_to_biharmonic").round(3), flush=True)
    return rows


def summary(table: pd.DataFrame) -> str:
    seeds = sorted(int(s) for s in table.seed.unique())
    lines = [f"# Gap filling on HadISST 1° (the main job's holes): seeds {seeds}", "",
             f"RMSE in the holes of the test patches, °C, mean ± std over seeds; ratio to biharmonic (target ≤ {TARGET})",
             ""]
    sets = list(dict.fromkeys(table["hole set"]))
    lines += ["| method | " + " | ".join(f"{k} RMSE | {k} ratio" for k in sets) + " |",
              "|---" * (2 * len(sets) + 1) + "|"]
    grouped = table.groupby(["method", "hole set"])
    mean, std = grouped[["rmse", "ratio_to_biharmonic"]].mean(), grouped[["rmse", "ratio_to_biharmonic"]].std()
    for method in dict.fromkeys(table.method):
        cells = [f"{mean.loc[(method, k), c]:.3f} ± {std.loc[(method, k), c]:.3f}" for k in sets
                 for c in ("rmse", "ratio_to_biharmonic")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    cover = table[table.method == "cnn"].groupby("hole set").cover_1sigma.agg(["mean", "std"])
    if len(cover):
        lines += ["", "cnn error bars, fraction of test-hole errors within 1σ (0.683 if calibrated): "
                  + ", ".join(f"{k} {cover.loc[k, 'mean']:.3f} ± {cover.loc[k, 'std']:.3f}" for k in sets)]
    ratios = mean.ratio_to_biharmonic.unstack("hole set")[sets].drop(index=["biharmonic", "local_mean"])
    winners = [m for m in ratios.index if (ratios.loc[m] <= TARGET).all()]
    best = ratios.min()
    lines += ["", "best learned ratio per hole set (any method): " + ", ".join(f"{k} {best[k]:.3f}" for k in sets),
              f"a method at ≤ {TARGET} × biharmonic on every hole set: {', '.join(winners) or 'none'}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="results CSV path (a .md summary is written beside it)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--append", action="store_true", help="add to the rows already in OUT (other seeds)")
    parser.add_argument("--pool", type=int, default=3000, help="fresh training samples for the cnn")
    parser.add_argument("--steps", type=int, default=1500, help="cnn optimisation steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="processes filling holes biharmonically")
    parser.add_argument("--run-root", default=None, help="where the seeds' runs go (default: a temp folder)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    kept = pd.read_csv(out) if args.append and out.exists() else pd.DataFrame({"seed": []})
    rows = kept[~kept.seed.isin(seeds)].to_dict("records")  # a seed run again replaces its rows
    # the workers start before torch runs anything: forking after its thread pools have run is unsafe
    with tempfile.TemporaryDirectory() as tmp, Pool(args.workers) as pool:
        root = Path(args.run_root or tmp)
        for seed in seeds:
            rows += run_seed(root, seed, args, pool)
            table = pd.DataFrame(rows)
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False)
            out.with_suffix(".md").write_text(summary(table))
    print(summary(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
