"""Super-resolution of gridded fields: degradation, baseline, training, tiled prediction,
model files, SR metrics and the ``geonb train`` / ``geonb predict`` commands.

Grids are 2-D numpy arrays (lat, lon) in physical units at this module's edges and
normalised torch tensors (B, C, y, x) inside. A conditioning grid is carried at the
high-res (target) resolution and block-averaged to its own resolution ``r`` (a power of
2, as a multiple of the low-res grid) when batches are made.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import GeonbError
from .io import load_checkpoint, save_checkpoint
from .metrics import rmse
from .models.esrgan import Discriminator, ragan_losses
from .models.srcnn import RecurrentSRCNN, block_mean, upsample_bicubic
from .registry import get_arch
from .tiling import Normaliser
from .training import fit

MODEL_FORMAT = "geonb-downscale/1"
DEFAULT_LR = {"srcnn": 1e-3, "rsrcnn": 1e-3, "srgan": 1.7e-4}   # srgan: DeepBedMap's lr
LOSS_WEIGHTS = {"content": 1e-2, "adversarial": 2e-2, "topographic": 2e-3, "structural": 5.25}  # DeepBedMap


# ---------------------------------------------------------------- checks and degradation
def check_factor(factor) -> int:
    """The scale factor as an int; a power of 2 (2, 4, 8, 16, ...) or a GeonbError."""
    try:
        f = int(factor)
    except (TypeError, ValueError):
        f = 0
    if f != factor or f < 2 or f & (f - 1):
        raise GeonbError(f"scale factor {factor!r} is not a power of 2; use 2, 4, 8 or 16 "
                         "(models upsample in ×2 steps).")
    return f


def check_finite(grid: np.ndarray, what: str) -> np.ndarray:
    grid = np.asarray(grid)
    bad = ~np.isfinite(grid)
    if bad.any():
        raise GeonbError(f"{what} has {int(bad.sum())} NaN/inf cells (of {grid.size}); downscaling needs a "
                         "complete grid. Fill the gaps first (e.g. the inpaint task) or crop to a complete region.")
    return grid


def parse_cond(spec, factor: int) -> list[tuple[str, int]]:
    """``"surface,velocity@2"`` → [("surface", factor), ("velocity", 2)].

    ``@r`` is the conditioning grid's resolution as a multiple of the low-res grid
    (a power of 2 ≤ factor); without it the grid is used at the target resolution.
    """
    if isinstance(spec, (list, tuple)):
        spec = ",".join(spec)
    out = []
    for item in filter(None, (s.strip() for s in str(spec or "").split(","))):
        name, _, res = item.partition("@")
        r = int(res) if res.isdigit() else (factor if not res else -1)
        if r < 1 or r > factor or r & (r - 1):
            raise GeonbError(f"conditioning {item!r}: resolution {res!r} must be a power of 2 between 1 and "
                             f"the factor {factor} (write name@r, e.g. velocity@2).")
        out.append((name, r))
    return out


def crop_to_multiple(grid: np.ndarray, m: int) -> np.ndarray:
    ny, nx = grid.shape[-2:]
    return grid[..., : ny - ny % m, : nx - nx % m]


def coarsen(hr: np.ndarray, factor: int) -> np.ndarray:
    """Block-average a high-res grid by ``factor`` (the degradation we learn to invert)."""
    factor = check_factor(factor)
    hr = check_finite(hr, "the high-res grid")
    ny, nx = hr.shape
    if ny % factor or nx % factor:
        raise GeonbError(f"a {ny}×{nx} grid does not divide into {factor}×{factor} blocks; "
                         "crop it (superres.crop_to_multiple) first.")
    return hr.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))


def bicubic(lr: np.ndarray, factor: int) -> np.ndarray:
    """The baseline: bicubic upsampling of the low-res grid (float64)."""
    t = torch.as_tensor(np.asarray(lr, dtype="float64"))[None, None]
    return upsample_bicubic(t, check_factor(factor))[0, 0].numpy()


def refine_coords(c: np.ndarray, factor: int) -> np.ndarray:
    """Cell centres of the high-res grid inside low-res cells with centres ``c``."""
    c = np.asarray(c, dtype="float64")
    d = np.diff(c).mean() if c.size > 1 else 1.0
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    return (c[:, None] + d * sub[None, :]).ravel()


# ---------------------------------------------------------------- data for training
@dataclass
class Scene:
    """One complete high-res grid (normalised) with its conditioning grids at the same resolution."""
    hr: np.ndarray
    conds: list = field(default_factory=list)
    name: str = ""

    def tensor(self) -> torch.Tensor:
        return torch.as_tensor(np.stack([self.hr, *self.conds]).astype("float32"))


def split_tensor(hr_stack: torch.Tensor, factor: int, cond_res) -> tuple:
    """(B, 1+nc, H, W) high-res stack → (lr, [cond at its r], hr)."""
    hr = hr_stack[:, :1]
    lr = block_mean(hr, factor)
    conds = [block_mean(hr_stack[:, 1 + i: 2 + i], factor // r) for i, r in enumerate(cond_res)]
    return lr, conds, hr


def patch_sampler(scenes: list[Scene], factor: int, patch_lr: int, batch_size: int, steps: int, seed: int):
    """``batches(epoch)`` for training.fit: random factor-aligned high-res patches."""
    size = patch_lr * factor
    for s in scenes:
        if min(s.hr.shape) < size:
            raise GeonbError(f"grid {s.name or ''} of {s.hr.shape[0]}×{s.hr.shape[1]} is smaller than one training "
                             f"tile ({size}×{size} = {patch_lr} low-res px × factor {factor}); use a smaller "
                             "patch, a smaller factor or a larger grid.")
    stacks = [s.tensor() for s in scenes]
    weights = np.array([s.hr.size for s in scenes], float)

    def batches(epoch: int):
        rng = np.random.default_rng([seed, epoch])
        for _ in range(steps):
            items = []
            for k in rng.choice(len(stacks), batch_size, p=weights / weights.sum()):
                _, ny, nx = stacks[k].shape
                i = rng.integers(0, (ny - size) // factor + 1) * factor
                j = rng.integers(0, (nx - size) // factor + 1) * factor
                items.append(stacks[k][:, i:i + size, j:j + size])
            yield torch.stack(items)

    return batches


# ---------------------------------------------------------------- SSIM (loss and metric)
def _gauss_window(size: int = 7, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_torch(pred: torch.Tensor, truth: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM (Gaussian 7×7 window, valid part only); differentiable."""
    w = _gauss_window(dtype=pred.dtype).to(pred.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = F.conv2d(pred, w), F.conv2d(truth, w)
    var_p = F.conv2d(pred * pred, w) - mu_p ** 2
    var_t = F.conv2d(truth * truth, w) - mu_t ** 2
    cov = F.conv2d(pred * truth, w) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return s.mean()


# ---------------------------------------------------------------- prediction
def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p), mode="replicate") if p else x


@torch.no_grad()
def predict_tensor(model, lr: torch.Tensor, conds=(), *, halo: int | None = None, tile: int | None = None) -> torch.Tensor:
    """Super-resolve (1, 1, h, w) normalised input; tiles of ``tile`` low-res px with a halo.

    The whole grid is replicate-padded once by ``halo`` (default: the model's receptive
    field radius); each tile is predicted with ``halo`` px of context on every side
    that are then cropped off. With halo ≥ the receptive field, every output pixel
    sees exactly the input it sees in a one-shot prediction: no seams.
    """
    f, cond_res = model.factor, model.cond_res
    halo = model.halo if halo is None else int(halo)
    _, _, h, w = lr.shape
    lr_p = _pad(lr, halo)
    conds_p = [_pad(c, halo * r) for c, r in zip(conds, cond_res)]
    tile = max(h, w) if tile is None else int(tile)
    out = torch.empty((1, 1, h * f, w * f), dtype=lr.dtype)
    for i in range(0, h, tile):
        for j in range(0, w, tile):
            th, tw = min(tile, h - i), min(tile, w - j)
            x = lr_p[..., i:i + th + 2 * halo, j:j + tw + 2 * halo]
            cs = [c[..., i * r:(i + th + 2 * halo) * r, j * r:(j + tw + 2 * halo) * r] for c, r in zip(conds_p, cond_res)]
            y = model(x, cs)
            out[..., i * f:(i + th) * f, j * f:(j + tw) * f] = y[..., halo * f:(halo + th) * f, halo * f:(halo + tw) * f]
    return out


def predict_grid(model, meta: dict, lr: np.ndarray, conds=(), *, halo=None, tile=None, float64: bool = False) -> np.ndarray:
    """Physical-units low-res grid (+ conditioning grids at their resolutions) → high-res grid."""
    lr = check_finite(lr, "the low-res input grid")
    names = meta.get("cond", [])
    if len(conds) != len(names):
        raise GeonbError(f"this model needs {len(names)} conditioning grid(s) ({', '.join(names) or 'none'}); "
                         f"got {len(conds)}. Pass them with --cond FILE:VAR.")
    dtype = torch.float64 if float64 else torch.float32
    if float64:
        model = copy.deepcopy(model).double()
    model.eval()
    mean, std = meta["norm"]
    x = torch.as_tensor((lr - mean) / std, dtype=dtype)[None, None]
    cs = []
    for c, name, r, (m, s) in zip(conds, names, meta["cond_res"], meta["cond_norm"]):
        c = check_finite(c, f"conditioning grid {name!r}")
        if c.shape != (lr.shape[0] * r, lr.shape[1] * r):
            raise GeonbError(f"conditioning grid {name!r} is {c.shape}; expected {(lr.shape[0] * r, lr.shape[1] * r)} "
                             f"(the low-res grid × {r}).")
        cs.append(torch.as_tensor((c - m) / s, dtype=dtype)[None, None])
    y = predict_tensor(model, x, cs, halo=halo, tile=tile)
    return y[0, 0].double().numpy() * std + mean


# ---------------------------------------------------------------- model files
def model_meta(arch, factor, var, cond, norm: Normaliser, cond_norms, hparams, trained_on="") -> dict:
    return {
        "format": MODEL_FORMAT, "arch": arch, "factor": int(factor), "var": str(var),
        "cond": [n for n, _ in cond], "cond_res": [int(r) for _, r in cond],
        "norm": [float(norm.mean), float(norm.std)],
        "cond_norm": [[float(n.mean), float(n.std)] for n in cond_norms],
        "hparams": {k: (float(v) if isinstance(v, float) else int(v)) for k, v in hparams.items()},
        "trained_on": str(trained_on),
    }


def build_model(meta: dict):
    return get_arch(meta["arch"]).build(factor=meta["factor"], cond_res=tuple(meta["cond_res"]), **meta["hparams"])


def save_model(path, model, meta: dict) -> Path:
    """Plain tensors, numbers and strings only: loads with torch.load(weights_only=True)."""
    return save_checkpoint(path, {**meta, "state": model.state_dict()})


def load_model(path):
    """(model in eval mode, meta) from a file written by save_model."""
    saved = load_checkpoint(path)
    if saved.get("format") != MODEL_FORMAT:
        raise GeonbError(f"{path} is not a geonb downscaling model (format {saved.get('format')!r}); "
                         "train one with `geonb train` or notebook 03 (arch srcnn/rsrcnn/srgan).")
    meta = {k: v for k, v in saved.items() if k != "state"}
    model = build_model(meta)
    model.load_state_dict(saved["state"])
    return model.eval(), meta


# ---------------------------------------------------------------- training
def _val_rmse(model, val: Scene, factor, cond_res, upto=None) -> float:
    """Validation RMSE (normalised units) of the whole val region, no halo (cheap)."""
    lr, conds, hr = split_tensor(val.tensor()[None], factor, cond_res)
    if upto is None:
        pred = model(lr, conds)
    else:
        pred = model.forward_stages(lr, conds, upto)[-1]
        hr = block_mean(hr, factor // 2 ** (upto + 1))
    return float(torch.sqrt(F.mse_loss(pred, hr)))


def train_model(arch: str, factor: int, cond_res, hparams: dict, train: list[Scene], val: Scene, ckpt_dir, *,
                epochs: int, steps: int, batch_size: int, lr: float, patch_lr: int, patience: int, seed: int,
                weights: dict | None = None, on_epoch=None, units: float = 1.0):
    """Train ``arch`` on random patches of the ``train`` scenes; early-stop on ``val``.

    ``on_epoch(epoch, val_rmse)`` is called after each validation (optuna pruning).
    ``units``: physical units (e.g. metres) per normalised unit, i.e. the Normaliser's std.
    srgan's content and topographic L1 terms are taken in physical units, as in DeepBedMap,
    whose loss weights (LOSS_WEIGHTS) assume metres: in normalised units they would be
    ~std× too small and the generator would optimise SSIM + adversarial terms only.
    Returns (model, history). rsrcnn trains stage by stage, each on its own label.
    """
    factor = check_factor(factor)
    cond_res = tuple(cond_res)
    torch.manual_seed(seed)
    model = get_arch(arch).build(factor=factor, cond_res=cond_res, **hparams)
    batches = patch_sampler(train, factor, patch_lr, batch_size, steps, seed)
    lr = lr or DEFAULT_LR[arch]
    ckpt_dir = Path(ckpt_dir)
    counter = {"epoch": 0}

    def report(val_rmse):
        counter["epoch"] += 1
        if on_epoch is not None:
            on_epoch(counter["epoch"], val_rmse)
        return val_rmse

    if isinstance(model, RecurrentSRCNN):
        history = []
        for k, stage in enumerate(model.stages):
            # Earlier stages are frozen; their prediction is this stage's input.
            opt = torch.optim.Adam(stage.parameters(), lr=lr)

            def step(stack, k=k, stage=stage, opt=opt):
                lr_t, conds, hr = split_tensor(stack, factor, cond_res)
                with torch.no_grad():
                    x = lr_t if k == 0 else model.forward_stages(lr_t, conds, k - 1)[-1]
                label = block_mean(hr, factor // 2 ** (k + 1))
                loss = F.mse_loss(stage(x, model.stage_conds(conds, k)), label)
                opt.zero_grad()
                loss.backward()
                opt.step()
                return {"loss": loss.item()}

            hist = fit({"stage": stage}, {"adam": opt}, batches, step,
                       lambda k=k: {"val_loss": report(_val_rmse(model, val, factor, cond_res, k))},
                       ckpt_dir / f"stage{k}", epochs=epochs, patience=patience, seed=seed,
                       desc=f"rsrcnn stage {k + 1}/{len(model.stages)} (×{2 ** (k + 1)})")
            history += [{**h, "stage": k + 1} for h in hist]
        return model.eval(), history

    validate = lambda: {"val_loss": report(_val_rmse(model, val, factor, cond_res))}  # noqa: E731
    opt_g = torch.optim.Adam(model.parameters(), lr=lr)
    if arch != "srgan":
        def step(stack):
            lr_t, conds, hr = split_tensor(stack, factor, cond_res)
            loss = F.mse_loss(model(lr_t, conds), hr)
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            return {"loss": loss.item()}

        history = fit({"model": model}, {"adam": opt_g}, batches, step, validate, ckpt_dir,
                      epochs=epochs, patience=patience, seed=seed, desc=arch)
        return model.eval(), history

    w = {**LOSS_WEIGHTS, **(weights or {})}
    disc = Discriminator()
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr)

    def gan_step(stack):
        lr_t, conds, hr = split_tensor(stack, factor, cond_res)
        fake = model(lr_t, conds)
        # Discriminator: relativistic average, on detached fakes.
        d_loss, _ = ragan_losses(disc(hr), disc(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        _, adv = ragan_losses(disc(hr), disc(fake))
        content = units * F.l1_loss(fake, hr)
        topo = units * F.l1_loss(block_mean(fake, factor), lr_t)
        structural = 1 - ssim_torch(fake, hr, data_range=float(hr.max() - hr.min()) or 1.0)
        g_loss = (w["content"] * content + w["adversarial"] * adv + w["topographic"] * topo
                  + w["structural"] * structural)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return {"loss": g_loss.item(), "d_loss": d_loss.item(), "content_l1": content.item(),
                "adversarial": adv.item(), "topographic": topo.item(), "ssim": 1 - structural.item()}

    history = fit({"generator": model, "discriminator": disc}, {"g": opt_g, "d": opt_d}, batches, gan_step,
                  validate, ckpt_dir, epochs=epochs, patience=patience, seed=seed, desc="srgan")
    return model.eval(), history


# ---------------------------------------------------------------- SR metrics
def psnr(pred, truth) -> float:
    """Peak signal-to-noise ratio (dB) with the truth's range as the peak."""
    truth = np.asarray(truth, float)
    return float(20 * np.log10((np.nanmax(truth) - np.nanmin(truth)) / rmse(pred, truth)))


def ssim(pred, truth) -> float:
    truth = np.asarray(truth, float)
    t = torch.as_tensor(truth)[None, None]
    p = torch.as_tensor(np.asarray(pred, float))[None, None]
    return float(ssim_torch(p, t, float(truth.max() - truth.min()) or 1.0))


def topographic_consistency(pred, lr, factor: int) -> float:
    """RMSE between the block-mean of the prediction and the low-res input (0 = consistent)."""
    return rmse(coarsen(np.asarray(pred, float), factor), lr)


def radial_spectrum(grid) -> tuple[np.ndarray, np.ndarray]:
    """(wavenumber in cycles/px, radially averaged power) of a plane-detrended, Hann-tapered grid."""
    g = np.asarray(grid, float)
    ny, nx = g.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    design = np.c_[np.ones(g.size), yy.ravel(), xx.ravel()]
    g = g - (design @ np.linalg.lstsq(design, g.ravel(), rcond=None)[0]).reshape(ny, nx)
    g = g * np.outer(np.hanning(ny), np.hanning(nx))
    power = np.abs(np.fft.fft2(g)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(ny), np.fft.fftfreq(nx), indexing="ij"))
    edges = np.linspace(0, 0.5, min(ny, nx) // 2 + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], power.ravel()[ok], len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    return (edges[:-1] + edges[1:]) / 2, sums / np.maximum(counts, 1)


def spectrum_ratio(pred, truth, factor: int) -> float:
    """Fine-scale variance recovered: power at wavenumbers the low-res grid cannot hold
    (above its Nyquist, 1/(2·factor) cycles/px), prediction over truth (1 = all of it)."""
    k, p_pred = radial_spectrum(pred)
    _, p_true = radial_spectrum(truth)
    fine = k > 0.5 / factor
    return float(p_pred[fine].sum() / p_true[fine].sum())


def sr_scores(pred, truth, lr, factor) -> dict:
    return {"rmse": rmse(pred, truth), "psnr": psnr(pred, truth), "ssim": ssim(pred, truth),
            "topo_consistency": topographic_consistency(pred, lr, factor),
            "spectrum_ratio": spectrum_ratio(pred, truth, factor)}


# ---------------------------------------------------------------- command line
def _cond_on_grid(spec: str, lat, lon, factor: int):
    """``FILE:VAR[@r]`` → (name, r, values interpolated onto the (lat, lon) cell centres)."""
    path, sep, var = spec.rpartition(":")
    if not sep or not path or not var:
        raise GeonbError(f"--cond {spec!r}: write FILE:VAR (e.g. surface.nc:elevation), optionally FILE:VAR@r.")
    [(var, r)] = parse_cond(var, factor)
    from .data import load_field

    da = load_field(path, var).isel(time=0)
    for axis, want in (("lat", lat), ("lon", lon)):
        have = da[axis].values
        half = abs(np.diff(have).mean()) / 2 if have.size > 1 else 0
        if min(want) < have.min() - half or max(want) > have.max() + half:
            raise GeonbError(f"conditioning grid {spec!r} covers {axis} {have.min():.4f}..{have.max():.4f} but the "
                             f"target needs {min(want):.4f}..{max(want):.4f}; give a grid that covers the target's extent.")
    # Coverage is checked to half a cell: clip the last half cell onto the edge centres.
    values = da.interp(lat=np.clip(lat, da.lat.min().item(), da.lat.max().item()),
                       lon=np.clip(lon, da.lon.min().item(), da.lon.max().item())).values
    return var, r, check_finite(values, f"conditioning grid {spec!r} on the target grid")


def cli_train(args) -> int:
    """``geonb train``: coarsen the high-res grid, train on its west 85 %, validate on the rest."""
    from .data import load_field

    f = check_factor(args.factor)
    da = load_field(args.data, args.var).isel(time=0)
    hr = crop_to_multiple(check_finite(da.values.astype("float64"), f"{args.data}:{da.name}"), f)
    lat, lon = da.lat.values[: hr.shape[0]], da.lon.values[: hr.shape[1]]
    conds = [_cond_on_grid(spec, lat, lon, f) for spec in args.cond or []]
    n_val = max(f * args.patch, int(0.15 * hr.shape[1]) // f * f)
    if hr.shape[1] - n_val < f * args.patch:
        raise GeonbError(f"the grid is {hr.shape[0]}×{hr.shape[1]}: too small for a training band and a validation band "
                         f"of {f * args.patch} columns each (patch {args.patch} × factor {f}). Use --patch smaller or a larger grid.")
    norm = Normaliser.fit(hr[:, :-n_val])
    cond_norms = [Normaliser.fit(v[:, :-n_val]) for _, _, v in conds]
    scene = lambda sl, name: Scene(norm(hr[:, sl]), [n(v[:, sl]) for (_, _, v), n in zip(conds, cond_norms)], name)  # noqa: E731
    hp = {"n_blocks": args.n_blocks, "nf": args.nf, "beta": args.beta} if args.arch == "srgan" else {}
    out = Path(args.model)
    model, _ = train_model(args.arch, f, [r for _, r, _ in conds], hp, [scene(slice(0, -n_val), "train")],
                           scene(slice(-n_val, None), "val"), out.with_name(out.stem + "_checkpoints"),
                           epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                           patch_lr=args.patch, patience=args.patience, seed=args.seed, units=float(norm.std))
    meta = model_meta(args.arch, f, str(da.name), [(n, r) for n, r, _ in conds], norm, cond_norms, hp,
                      f"{args.data} {hr.shape[0]}x{hr.shape[1]}")
    save_model(out, model, meta)
    print(f"wrote {out}")
    return 0


def cli_predict(args) -> int:
    """``geonb predict``: super-resolve a low-res grid into NetCDF at the new resolution."""
    import xarray as xr

    from .data import load_field
    from .io import write_netcdf

    model, meta = load_model(args.model)
    f = meta["factor"]
    da = load_field(args.input, args.var).isel(time=0)
    lr = check_finite(da.values.astype("float64"), f"{args.input}:{da.name}")
    conds = []
    for spec, want in zip(args.cond or [], meta["cond_res"]):
        name, r, values = _cond_on_grid(spec, refine_coords(da.lat.values, want), refine_coords(da.lon.values, want), want)
        conds.append(values)
    hr = predict_grid(model, meta, lr, conds, tile=args.tile)
    lat, lon = refine_coords(da.lat.values, f), refine_coords(da.lon.values, f)
    name = str(da.name or meta["var"])
    out = xr.DataArray(
        hr.astype("float32"), dims=("lat", "lon"), name=name,
        coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})},
        attrs={"units": da.attrs.get("units", ""), "long_name": f"{da.attrs.get('long_name', name)}, super-resolved ×{f}"},
    ).to_dataset()
    out.attrs.update(Conventions="CF-1.8", title=f"geonb {meta['arch']} ×{f} downscaling of {args.input}",
                     source=f"geonb model {args.model} ({meta['arch']}, trained on {meta['trained_on']})",
                     history=f"geonb predict --model {args.model} --input {args.input} --var {args.var}")
    write_netcdf(out, args.out)
    print(f"wrote {args.out} ({hr.shape[0]}×{hr.shape[1]})")
    return 0


def add_cli(subparsers) -> None:
    """Add ``geonb train`` and ``geonb predict`` to an argparse subparsers object."""
    t = subparsers.add_parser("train", help="train a downscaling model on a high-res grid (makes the low-res input itself)")
    t.add_argument("--arch", required=True, choices=sorted(DEFAULT_LR))
    t.add_argument("--data", required=True, help="high-res NetCDF/zarr file or embedded dataset name")
    t.add_argument("--var", default="", help="variable in --data")
    t.add_argument("--factor", type=int, default=4, help="2, 4, 8 or 16")
    t.add_argument("--model", required=True, help="output model file (.pt)")
    t.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]", help="conditioning grids covering the target")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--steps", type=int, default=40, help="batches per epoch")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=0.0, help="0 = the arch's default")
    t.add_argument("--patch", type=int, default=16, help="training tile in low-res px")
    t.add_argument("--patience", type=int, default=5)
    t.add_argument("--n-blocks", type=int, default=12, help="srgan RRDBs")
    t.add_argument("--nf", type=int, default=64, help="srgan feature maps")
    t.add_argument("--beta", type=float, default=0.2, help="srgan residual scaling")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cli_train)
    p = subparsers.add_parser("predict", help="super-resolve a low-res grid with a trained model; writes NetCDF")
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help="low-res NetCDF/zarr file or embedded dataset name")
    p.add_argument("--var", default="")
    p.add_argument("--out", required=True, help="output NetCDF")
    p.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]", help="the model's conditioning grids, same order")
    p.add_argument("--tile", type=int, default=64, help="tile size in low-res px (halo added and cropped)")
    p.set_defaults(func=cli_predict)
