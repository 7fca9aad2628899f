"""Training a downscaling model: the loop (03 and `geonb train`), the model file, `geonb train` on a grid file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ... import methods, plots
from ...data import load_grid
from ...errors import GeonbError
from ...outputs import check_outputs, locked
from ...losses import DEEPBEDMAP_WEIGHTS
from ...modelfile import TrainedModel
from ...normalise import Normaliser
from ...predict import HALO_TOL, MEASURE_ABOVE, Predictor
from ...terrain import fractal_terrain
from ...params import resolved
from ...registry import get_arch
from ...report import Report
from ...resample import block_mean, check_factor, check_finite
from ...checkpoints import config_key
from ...training import Accelerator, accelerator, run_accelerator
from .data import (
    COORDS, CPU_BF16, DATA_DEFAULTS, FALLBACK, HALO_CAP, HPARAMS, LOSS_WEIGHTS, PARAMS, _cond, _crop16, _data_id,
    _hparams, _label, _load, baseline_rmse, model_name, setting, split_map)
from .infer import _cond_on_grid
from .sigma import add_sigma, check_sigma
from .sampling import Scene, _training_data, patch_sampler, region_scenes, split_tensor, time_blocks


def train_model(arch: str, factor: int, cond_res, hparams: dict, scenes: list[Scene], vals, ckpt_dir, *,
                epochs: int, steps: int, batch_size: int, lr: float, patch_lr: int, patience: int, seed: int,
                losses: dict | None = None, on_epoch=None, units: float = 1.0, device: Accelerator | None = None,
                sigma: bool = False, init: str = ""):
    """Train ``arch`` on random patches of the ``scenes``; early-stop on the RMSE of the ``vals``
    scenes (one Scene or a list) on their valid cells.

    ``on_epoch(epoch, val_rmse)`` is called after each validation (optuna pruning).
    ``units``: physical units (e.g. metres) per normalised unit (the normaliser's std), for
    the DeepBedMap loss; ``losses``: its weights (``w_content``…, ``w_adversarial``; default DeepBedMap's);
    ``device``: the ``training.Accelerator`` (default: the CPU); ``sigma``: then a σ head on the trained mean,
    calibrated on the ``vals`` (``sigma.add_sigma``); ``init``: a model to start from (``methods.build``).
    Returns (method, history); the trained generator is ``method.generator``.
    """
    factor, cond_res = check_factor(factor), tuple(cond_res)
    acc = device or Accelerator(torch.device("cpu"))
    spec = get_arch(arch)
    if sigma:
        check_sigma(arch)
    w = {**DEEPBEDMAP_WEIGHTS, **(losses or {})}
    method = methods.build(spec, {"factor": factor, "cond_res": cond_res, **hparams}, lr=lr, seed=seed, device=acc, init=init,
                           adv_weight=w.pop("w_adversarial", 0.0), content_args={"factor": factor, "units": units, **w})
    batches = patch_sampler(scenes, factor, cond_res, patch_lr, batch_size, steps, seed,
                            margin=min(method.generator.halo * factor, HALO_CAP))
    vals = [split_tensor(v.tensor()[None].to(acc.device), factor, cond_res) for v in ([vals] if isinstance(vals, Scene) else vals)]
    count = [0]

    def validate():
        """RMSE (normalised) on the valid val cells at the prediction's resolution (stagewise: per stage)."""
        sse = n = 0.0
        for x, hr, wt in vals:
            pred = method.predict(x)
            k = hr.shape[-1] // pred.shape[-1]
            wk = block_mean(wt, k)
            sse += float((wk * (pred - block_mean(hr, k)) ** 2).sum())
            n += float(wk.sum())
        score = (sse / n) ** 0.5
        count[0] += 1
        if on_epoch is not None:
            on_epoch(count[0], score)
        return {"val_loss": score}

    history = method.fit(batches, validate, ckpt_dir, epochs=epochs, patience=patience, seed=seed, desc=arch)
    if sigma:
        add_sigma(method, arch, {"factor": factor, "cond_res": cond_res, **hparams}, batches, vals,
                  Path(ckpt_dir) / "sigma", epochs=epochs, patience=patience, seed=seed, acc=acc)
    return method, history


def save_model(path, method, arch: str, hparams: dict, var: str, cond, norm: Normaliser, cond_norms,
               trained_on: str, history, valid_above=None, crs: str = "", units: str = ""):
    """The model file: generator settings, normalisers of the target and each conditioning grid,
    the mask threshold, the grid's CRS and the target's units; for a network whose receptive field is
    wider than ``MEASURE_ABOVE`` cells (srgan), its effective halo (``measure_halo``); with a σ head
    (``method.sigma_fit``), its scale and training history."""
    fitted = getattr(method, "sigma_fit", None)
    arch_args = {"factor": method.generator.factor, "cond_res": [int(r) for _, r in cond], **hparams,
                 **({"sigma": True} if fitted else {})}
    norms = {"target": norm, **{f"cond {n}": cn for (n, _), cn in zip(cond, cond_norms)}}
    model = TrainedModel("downscale", arch, arch_args, method.weights(), norms,
                         inputs={"variable": str(var), "cond": [n for n, _ in cond],
                                 "valid_above": None if valid_above is None else float(valid_above), "crs": str(crs),
                                 "units": {"target": str(units)}},
                         method_args={"sigma_scale": fitted["scale"]} if fitted else {},
                         info={"trained_on": str(trained_on), "history": history,
                               **({"sigma_history": fitted["history"]} if fitted else {})})
    if method.generator.halo > MEASURE_ABOVE:  # on the training device: minutes on a CPU at srgan's size
        device = str(next(method.generator.parameters()).device)
        model.info.update(effective_halo=measure_halo(model, device=device), halo_tol=HALO_TOL)
    return model.save(path)


def measure_halo(model: TrainedModel, tol: float = HALO_TOL, device: str = "cpu") -> int:
    """The model's effective halo in low-res cells (``Predictor.effective_halo``), probed in normalised units
    with white noise (std 1: every wavelength) and fractal terrain of std 3 (steep, ±3 training stds), the
    conditioning grids likewise at their resolutions."""
    predictor = Predictor(model, device=device)
    size = 32 + 2 * int(predictor.net.halo)
    rs = model.arch_args["cond_res"]
    rng = np.random.default_rng(0)

    def field(kind, n, seed):
        if kind == "noise":
            return rng.standard_normal((n, n))
        f = fractal_terrain(n, n, seed=seed)
        return 3 * (f - f.mean()) / f.std()

    probes = [(predictor.tensor(field(kind, size, 1))[None, None],
               [predictor.tensor(field(kind, size * r, 2 + k))[None, None] for k, r in enumerate(rs)])
              for kind in ("noise", "terrain")]
    return predictor.effective_halo(probes, tol=tol)


def train(run) -> Report:
    """Train the run's arch (after an optuna search when tune_trials > 0); save the model file."""
    arch, f = run["arch"], check_factor(run["factor"])
    ds = _load(run)
    cond = _cond(run, ds)
    name = model_name(arch, f, cond)
    scenes, vals, norm, cond_norms = _training_data(run, ds, cond)
    hp, lr, batch = _hparams(run), run["lr"], run["batch_size"]
    device = run_accelerator(run)
    settings = dict(steps=run["steps_per_epoch"], patch_lr=run["patch_lr"], patience=run["patience"], seed=run["seed"],
                    losses={k: run[k] for k in LOSS_WEIGHTS},
                    units=float(norm.std), device=device, init=run["init"])
    tables, figures = {}, []
    if run["tune_trials"] > 0:
        from ... import tuning

        searched = run.arch.accepts("generator", {"n_blocks": 0, "beta": 0})

        def objective(params, on_epoch, trial_dir):
            hp_t = {**hp, **{k: params[k] for k in searched if k in params}}
            _, hist = train_model(arch, f, [r for _, r in cond], hp_t, scenes, vals, trial_dir,
                                  epochs=run["tune_epochs"], batch_size=params["batch_size"], lr=params["lr"],
                                  on_epoch=on_epoch, **settings)
            return min(h["val_loss"] for h in hist)

        best, trials, fig = tuning.tune(objective, run.checkpoint_dir(f"tuning_{name}"), run["tune_trials"],
                                        seed=run["seed"], max_epochs=run["tune_epochs"], search_blocks=bool(searched))
        lr, batch = best["lr"], best["batch_size"]
        hp.update({k: best[k] for k in searched if k in best})
        tables["optuna trials (val RMSE, normalised)"] = trials
        figures.append(fig)
    method, history = train_model(arch, f, [r for _, r in cond], hp, scenes, vals, run.checkpoint_dir(name),
                                  epochs=run["epochs"], batch_size=batch, lr=lr, sigma=run["sigma"], **settings)
    trained_on = f"{_data_id(ds)} train region + {setting(run, 'synthetic')} synthetic scenes"
    above = setting(run, "valid_above")
    path = save_model(run.model_path(name), method, arch, hp, ds["target"].attrs["variable"], cond, norm, cond_norms,
                      trained_on, history, above, ds.attrs["crs"], ds["target"].attrs.get("units", ""))
    figures.insert(0, plots.loss_curves(history, run.figure(f"03_loss_{name}"),
                                        title=f"{_label(name)} (val loss = val-region RMSE, normalised)"))
    tables["history (last epochs)"] = pd.DataFrame(history).tail(5).set_index("epoch")
    if run["sigma"]:
        fitted = method.sigma_fit
        tables[f"σ head (val loss: val-region Gaussian NLL; σ scale {fitted['scale']:.3g}, fitted on the val region)"] = \
            pd.DataFrame(fitted["history"]).tail(5).set_index("epoch")
    return Report(f"03 train {_label(name)}", f"Model file: `{path}` ({trained_on}; lr {lr:.3g}, "
                  f"batch {batch}, {hp or 'default SRCNN'}; device {device.device}).", tables, figures)


def train_command(args, given: dict) -> int:
    """``geonb train`` of a downscaling arch: coarsen the user's high-res grid (``--data``; default the task's),
    train on it, validate on val bands or blocks (no test region: the model is for this grid)."""
    run = resolved(PARAMS, given, get_arch(args.arch).lr)
    out = Path(args.model).expanduser()  # the path checked is the path written
    checkpoints = out.with_name(out.stem + "_checkpoints")
    check_outputs({"--model": out, "checkpoints": checkpoints}, [run["data"], *(c.rpartition(":")[0] for c in args.cond or [])],
                  overwrite=args.overwrite, folders=("checkpoints",))
    f = check_factor(run["factor"])
    grid = load_grid(run["data"], run["var"], allow_outliers=run["allow_outliers"], steps=True)
    var = grid.attrs["target"]
    size = run["patch_lr"] * f
    grid = _crop16(grid, (max(16, size), -(-size // 16) * 16 + 16),
                   f"a training tile of {size} cells, --patch-lr {run['patch_lr']} × --factor {f}, beside a 16-cell "
                   "validation band; or a smaller --patch-lr or --factor")
    ny, nx = grid.sizes["y"], grid.sizes["x"]
    hr = grid[var].values.astype("float64")
    dims = grid[var].dims  # (y, x), or (time, y, x): a series learns from every step
    defaults = DATA_DEFAULTS.get(str(run["data"]), FALLBACK)
    above = run["valid_above"] if run["valid_above"] is not None else defaults.get("valid_above")
    block = defaults.get("block", 0) if min(ny, nx) >= 3 * defaults.get("block", 0) else 0
    if "time" in dims:  # clouds and land: out of the loss (region_scenes); a step all NaN teaches nothing
        valid = np.isfinite(hr) & (hr > (above if above is not None else -np.inf))
        if not valid.any(axis=(1, 2)).all():
            raise GeonbError(f"{run['data']}:{var} has time steps without a single valid cell; drop them first.")
    else:
        check_finite(hr, f"{run['data']}:{var}")
        valid = hr > above if above is not None else np.ones(hr.shape, bool)
    conds = [_cond_on_grid(spec, grid, f, run["allow_outliers"]) for spec in args.cond or []]
    ds = xr.Dataset({"target": (dims, hr), "valid": (dims, valid.astype("uint8")),
                     "split": (("y", "x"), split_map((ny, nx), block, test=False)),
                     **{n: (("y", "x"), v) for n, _, v in conds if n not in COORDS},
                     **({"val_step": ("time", time_blocks(hr.shape[0]))} if "time" in dims else {})},
                    coords={"y": grid.y, "x": grid.x}, attrs={"block": block})
    cond = [(n, r) for n, r, _ in conds]
    scenes, vals, norm, cond_norms = region_scenes(ds, cond)
    if not vals:
        raise GeonbError(f"{run['data']}:{var} leaves no valid cell in the validation region; give a larger grid "
                         "or more time steps.")
    hp = get_arch(args.arch).accepts("generator", {k: run[k] for k in HPARAMS})
    settings = dict(epochs=run["epochs"], steps=run["steps_per_epoch"], batch_size=run["batch_size"], lr=run["lr"],
                    patch_lr=run["patch_lr"], patience=run["patience"], seed=run["seed"],
                    losses={k: run[k] for k in LOSS_WEIGHTS}, init=run["init"])
    # checkpoints keyed by everything the training depends on, data included: another run never resumes them
    key = config_key({"arch": args.arch, "factor": f, "hparams": hp, "cond": cond, "valid_above": above, **settings,
                      "data": hashlib.sha256(b"".join(ds[v].values.tobytes() for v in sorted(ds.data_vars))).hexdigest()})
    with locked(checkpoints / key, "the checkpoint folder"):
        acc = accelerator(run["device"], run["amp"], run["compile"], run["workers"], args.arch in CPU_BF16)
        method, history = train_model(args.arch, f, [r for _, r in cond], hp, scenes, vals, checkpoints / key,
                                      units=float(norm.std), device=acc, sigma=run["sigma"], **settings)
    steps = f"{hr.shape[0]} steps of " if "time" in dims else ""
    save_model(out, method, args.arch, hp, var, cond, norm, cond_norms, f"{run['data']} {steps}{ny}x{nx}", history,
               above, grid.attrs["crs"], grid[var].attrs.get("units", ""))
    print(f"wrote {out}")
    units, best = grid[var].attrs.get("units", ""), min(h["val_loss"] for h in history) * norm.std
    classical = {b: r * norm.std for b, r in baseline_rmse(vals, f).items()}
    print(f"[geonb train] skill on the validation region (never trained on; it chose the epoch): RMSE {best:.4g} "
          f"{units}; bicubic {classical['bicubic']:.4g}, cubic spline {classical['spline']:.4g} {units}: "
          f"{best / min(classical.values()):.3f} × the better baseline.")
    return 0


def train_flags(parser) -> None:
    """``geonb train``'s flags of its own for a downscaling arch: conditioning grids are files here."""
    parser.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]",
                        help="conditioning grids covering the target (x, y: the coordinates)")
