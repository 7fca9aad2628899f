"""The cloud model: trained self-supervised on a cloudy cube (``train_on_cube``), then filling it (``fill_cube``).

Training lays another day's clouds over observed pixels and learns to give them back; a few observed
pixels held out (cloud-shaped patches) stop it early and fit the σ scale. ``geonb fill`` trains one
on the cube it fills (``geonb.fill``); the clouds task (``geonb.tasks.clouds``) scores it on
cross-validation points. ``CLOUD_PARAMS`` are the parameters both take, with their bounds; ``CPU_BF16`` is
the bf16 verdict both train with.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from . import baselines, methods, metrics
from .cloudinputs import CloudInputs, cube_norms
from .errors import GeonbError
from .modelfile import TrainedModel
from .params import ALLOW_OUTLIERS, COMMON, Param
from .predict import Predictor, pad_to_multiple
from .registry import get_arch
from .training import Accelerator, accelerator, resumed_epoch

QUICK = {"epochs": 2, "samples_per_day": 1, "widths": [8, 12, 16, 24], "crop": 64, "n_average": 2}  # seconds
# What ``geonb fill`` and the clouds task both take, with their bounds: ``train_on_cube`` checks its options
# with them, ``geonb fill`` its flags, and the clouds task adds its own (geonb.tasks.clouds.PARAMS).
CLOUD_PARAMS = COMMON.override(
    epochs={"default": 60, "quick": QUICK["epochs"]},
    patience={"default": 20, "help": "the NLL on few validation pixels is noisy: stop late"},
    batch_size={"default": 4},
) + (
    ALLOW_OUTLIERS,
    Param("window", int, 3, "days per input: t−1, t, t+1 (odd)", min=1, max=31),
    Param("widths", list, [16, 24, 32, 48], "feature maps per U-Net level", quick=QUICK["widths"], min=1, max=1024),
    Param("crop", int, 96, "training patch size (pixels)", quick=QUICK["crop"], min=16, max=1024),
    Param("samples_per_day", int, 4, "random other-day cloud masks per day and epoch",
          quick=QUICK["samples_per_day"], min=1, max=100),
    Param("n_average", int, 5, "last epochs whose predictions are averaged", quick=QUICK["n_average"], min=0, max=100),
)
# amp auto trains in bf16 on a CPU with native bf16: 3 seeds, every hole set within float32's spread
# (benchmarks/results/clouds_alboran_bf16.md)
CPU_BF16 = True

DEFAULTS = {"window": 3, "widths": [16, 24, 32, 48], "epochs": 60, "batch_size": 4, "lr": 1e-3,
            "crop": 96, "samples_per_day": 4, "n_average": 5, "patience": 1000, "average": "predictions",
            "init": ""}
PAD = 16  # training crops: a multiple of DINCAE's pooling


def train_on_cube(values, lat, lon, times, *, arch: str = "dincae", val_points=None, ckpt_dir, seed: int = 0, units: str = "",
                  device: str | Accelerator = "auto", **options) -> TrainedModel:
    """Train self-supervised on the cloudy cube ``values`` (time, lat, lon; NaN = missing).

    ``arch``: dincae (window input, Gaussian NLL, σ), or unet (the seed's input and
    masked loss on the hidden pixels, no σ). ``val_points`` (bool like values): observed
    pixels kept out of training, used for early stopping and to fit the σ scale (so the
    score points stay untouched). Options (``DEFAULTS``): window, widths, epochs,
    batch_size, lr, crop (training patch size), samples_per_day (random other-day masks
    per day and epoch), n_average (the last epochs whose weights are kept for averaging),
    average ("predictions" or "weights", see ``geonb.methods.gaussian_nll``), patience, init (a model to
    start from, ``methods.build``).
    (A cosine decay of the learning rate over 60 epochs was tried and gave a worse CV
    RMSE on Alboran: 0.330 vs 0.277.)
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise GeonbError(f"unknown cloud-model option(s) {sorted(unknown)}; valid: {', '.join(DEFAULTS)}.")
    opt = {k: CLOUD_PARAMS[k].check(v) if k in CLOUD_PARAMS else v for k, v in {**DEFAULTS, **options}.items()}
    truth = np.asarray(values, "float32")
    if truth.ndim != 3:
        raise GeonbError(f"need a (time, lat, lon) cube; got shape {truth.shape}.")
    val_points = np.zeros(truth.shape, bool) if val_points is None else np.asarray(val_points, bool) & np.isfinite(truth)
    values = np.where(val_points, np.nan, truth)
    window = int(opt["window"])
    if window % 2 == 0 or window < 1:
        raise GeonbError(f"window must be an odd number of days (1, 3, 5…); got {window}.")
    if values.shape[0] < max(window, 2):
        raise GeonbError(f"the cube has {values.shape[0]} day(s) but training needs at least max(window={window}, 2) "
                         "days (clouds are borrowed from other days): use a smaller window or a longer cube.")
    t_start = time.perf_counter()
    spec = get_arch(arch)
    gaussian = spec.method == "gaussian_nll"  # mean + σ; otherwise the seed's input and masked loss
    encoding = window if gaussian else 0
    arch_args = ({"in_channels": CloudInputs.channels(window), "widths": [int(w) for w in opt["widths"]]}
                 if gaussian else {"in_channels": 2, "out_channels": 1})
    norms = cube_norms(values, lat, lon)
    inp = CloudInputs(values, lat, lon, times, norms, encoding)
    nt, ny, nx = values.shape
    sea = inp.obs.any(0)
    crop = min(int(opt["crop"]), ny, nx)
    crop -= crop % PAD  # the U-Net halves the patch size (levels − 1) times
    if crop < PAD:
        raise GeonbError(f"the grid ({ny}×{nx}) is too small: {arch} needs at least {PAD}×{PAD} pixels.")
    acc = device if isinstance(device, Accelerator) else accelerator(device, cpu_bf16=CPU_BF16)
    device = acc.device
    method = methods.build(spec, arch_args, lr=float(opt["lr"]), seed=seed, device=acc,
                           n_average=int(opt["n_average"]), init=opt["init"])

    def batches(epoch):
        rng = np.random.default_rng([seed, epoch])
        days = np.repeat(np.arange(nt), opt["samples_per_day"])
        rng.shuffle(days)
        samples = []
        for t in days:
            donor = rng.choice([s for s in range(nt) if s != t])
            hide = inp.obs[t] & ~inp.obs[donor] & sea  # the donor day's clouds over day t
            y0, x0 = rng.integers(0, ny - crop + 1), rng.integers(0, nx - crop + 1)
            win = (slice(y0, y0 + crop), slice(x0, x0 + crop))
            x = inp.sample(t, hide)[(slice(None), *win)]
            target = np.where(hide, inp.x[t], np.nan)[win]
            if rng.random() < 0.5:  # flips: the coordinate channels flip too, so nothing is lost
                x, target = x[:, ::-1], target[::-1]
            if rng.random() < 0.5:
                x, target = x[:, :, ::-1], target[:, ::-1]
            if np.isfinite(target).sum() < 10:
                continue
            samples.append((x.copy(), target.copy()))
            if len(samples) == opt["batch_size"]:
                yield _batch(samples)
                samples = []
        if samples:
            yield _batch(samples)

    # validation: the val pixels (never in any input) predicted from the whole cube
    val_days = [t for t in range(nt) if val_points[t].any()]
    val_x = torch.stack([torch.from_numpy(inp.sample(t)) for t in val_days]) if val_days else None
    val_y = (torch.from_numpy(np.where(val_points, norms["field"](truth), np.nan)[val_days])[:, None]
             if val_days else None)
    epochs_done = [resumed_epoch(ckpt_dir)]  # no validation points: later epochs score better

    def validate():
        epochs_done[0] += 1
        if val_x is None:  # nothing held out: each epoch counts as the best so far, the last is kept
            return {"val_loss": -epochs_done[0]}
        x, (h, w) = pad_to_multiple(val_x, PAD)
        y = val_y.to(device)
        return {"val_loss": method.loss(method.predict(x.to(device))[:, :, :h, :w], y, torch.isfinite(y).float()).item()}

    history = method.fit(batches, validate, ckpt_dir, epochs=int(opt["epochs"]), patience=int(opt["patience"]),
                         seed=seed, desc=f"{arch} (self-supervised)")
    model = TrainedModel("clouds", arch, arch_args, method.weights(), norms,
                         method_args={"average": opt["average"], "sigma_scale": 1.0},
                         inputs={"window": encoding, "units": {"field": str(units)}},
                         info={"history": history, "trained_on": f"a {nt}-day {ny}×{nx} cube, {int(inp.obs.sum())} "
                                                                 "observed pixels (validation points held out)"})
    if val_days:
        mean, sigma = fill_cube(model, values, lat, lon, times)
        if gaussian:  # fitted on val pixels, never on score points
            model.method_args["sigma_scale"] = float(np.quantile(np.abs(mean - truth)[val_points] / sigma[val_points],
                                                                 0.6827))
        # the skill on pixels no training step saw, in the field's unit, beside biharmonic per day on them
        days = np.asarray(val_days)
        classical = baselines.biharmonic(values[days], val_points[days])
        model.info["held_out"] = {"points": int(val_points.sum()), "rmse": metrics.rmse(mean, truth, val_points),
                                  "rmse_biharmonic": metrics.rmse(classical, truth[days], val_points[days])}
    model.info["train_seconds"] = time.perf_counter() - t_start
    return model


def _batch(samples):
    xs, ys = zip(*samples)
    y = torch.from_numpy(np.stack(ys))[:, None]
    return torch.from_numpy(np.stack(xs)), y, torch.isfinite(y).float()


def fill_cube(model: TrainedModel, values, lat, lon, times, *, last: int | None = None, average: str | None = None):
    """(mean, σ) for every pixel and day of the cube, in data units; σ is None without a variance output.

    Uses the last ``last`` weight snapshots (default all), combined as the model was trained
    to be used unless ``average`` says otherwise (``geonb.methods.gaussian_nll``).
    """
    inp = CloudInputs(values, lat, lon, times, model.norms, int(model.inputs["window"]))
    out = Predictor(model, average=average)(inp.all_days(), batch=4, last=last)
    norm = model.norms["field"]
    mean = norm.inverse(out["mean"])
    if "variance" not in out:
        return mean, None
    return mean, np.sqrt(out["variance"]) * norm.std * model.method_args["sigma_scale"]

