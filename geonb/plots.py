"""Figures as PNG files: maps with coastlines (offline), density scatter, transects, loss curves."""
from __future__ import annotations

from pathlib import Path

import cartopy.crs as ccrs
import cmocean
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from .outputs import atomic_path
from .metrics import rmse
from .paths import use_offline_cartopy

use_offline_cartopy()

CMAPS = {"sst": cmocean.cm.thermal, "elevation": cmocean.cm.topo, "diff": cmocean.cm.balance,
         "sigma": cmocean.cm.amp, "error": cmocean.cm.amp, "thickness": cmocean.cm.ice,
         "split": ListedColormap(["#4c72b0", "#dd8452", "#c44e52"]), "mask": ListedColormap(["#ffffff", "#222222"])}
CATEGORY_COLOURS = ["#e8e8e8", "#8c8c8c", "#c44e52", "#4c72b0", "#dd8452", "#55a868", "#8172b2", "#937860"]


def colour_map(kind: str, lo: float, hi: float):
    """The colour map of a panel kind; elevation keeps cmocean's land/sea break at 0 m.

    Without this, topo's colour change sits mid-range and draws a false coastline.
    """
    if kind != "elevation":
        return CMAPS.get(kind, "viridis")
    if lo >= 0:
        return cmocean.tools.crop_by_percent(cmocean.cm.topo, 50, which="min")
    if hi <= 0:
        return cmocean.tools.crop_by_percent(cmocean.cm.topo, 50, which="max")
    return cmocean.tools.crop(cmocean.cm.topo, lo, hi, 0)


def save_figure(fig, path) -> Path:
    """Save as PNG atomically, close the figure, return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def projection(crs: str = ""):
    """The cartopy projection of a grid's CRS: PlateCarree for lat/lon grids, the polar
    stereographic projections by name, any other projected CRS through pyproj."""
    if crs in ("", "EPSG:4326"):
        return ccrs.PlateCarree()
    if crs == "EPSG:3031":
        return ccrs.SouthPolarStereo(true_scale_latitude=-71)
    if crs == "EPSG:3413":
        return ccrs.NorthPolarStereo(central_longitude=-45, true_scale_latitude=70)
    from pyproj import CRS

    return ccrs.Projection(CRS.from_user_input(crs))


def map_panels(panels, path, ncols: int = 4, suptitle: str = "", units: str = "", line=None, crs: str = "") -> Path:
    """Panels of (title, values(y, x), y, x, kind) on maps with coastlines, in the grid's own
    projection (``crs``; lat/lon on PlateCarree by default).

    ``kind`` picks the colour map (sst, elevation, diff, sigma, error); panels of the same
    kind share colour limits so they compare at a glance; ``diff`` is centred on zero. A tuple of
    names is a categorical map: values 0, 1, … are those categories, one colour and tick each, no units.
    ``line`` = (ys, xs) in the grid's coordinates draws a transect on every panel.
    """
    proj = projection(crs)
    limits = {}
    for _, values, _, _, kind in panels:
        if isinstance(kind, tuple):
            continue
        finite = np.asarray(values)[np.isfinite(values)]
        if finite.size:
            lo, hi = np.percentile(finite, [1, 99])
            old = limits.get(kind, (lo, hi))
            limits[kind] = (min(old[0], lo), max(old[1], hi))
    if "diff" in limits:
        m = max(abs(v) for v in limits["diff"]) or 1.0
        limits["diff"] = (-m, m)
    nrows = int(np.ceil(len(panels) / ncols))
    fig = plt.figure(figsize=(3.6 * min(ncols, len(panels)), 3.1 * nrows))
    for k, (title, values, lat, lon, kind) in enumerate(panels):
        ax = fig.add_subplot(nrows, min(ncols, len(panels)), k + 1, projection=proj)
        categories = kind if isinstance(kind, tuple) else ("train", "val", "test") if kind == "split" else None
        lo, hi = (-0.5, len(categories) - 0.5) if categories else limits.get(kind, (0, 1))
        cmap = ListedColormap(CATEGORY_COLOURS[:len(categories)]) if isinstance(kind, tuple) else colour_map(kind, lo, hi)
        mesh = ax.pcolormesh(lon, lat, values, transform=proj, cmap=cmap, vmin=lo, vmax=hi, shading="nearest")
        ax.set_extent([float(np.min(lon)), float(np.max(lon)), float(np.min(lat)), float(np.max(lat))], crs=proj)
        ax.coastlines(resolution="50m", linewidth=0.7)
        if line is not None:
            ax.plot(line[1], line[0], "m-", lw=1.5, transform=proj)
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.75, label="" if categories else units)
        if categories:
            bar.set_ticks(range(len(categories)), labels=list(categories))
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)


def binned_stats(truth, pred, bins: int = 30):
    """Per bin of the true value: centre, mean prediction, 2.5 and 97.5 percentiles."""
    edges = np.linspace(np.min(truth), np.max(truth), bins + 1)
    idx = np.clip(np.digitize(truth, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = pred[idx == b]
        if sel.size >= 5:
            rows.append(((edges[b] + edges[b + 1]) / 2, sel.mean(), *np.percentile(sel, [2.5, 97.5])))
    return np.array(rows).reshape(-1, 4)


def scatter_density(series: dict, path, units: str = "", title: str = "") -> Path:
    """One hexbin panel per name → (truth, pred): 1:1 line, binned mean and 95 % interval.

    Hexbin keeps millions of points cheap.
    """
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 4), squeeze=False)
    for ax, (name, (truth, pred)) in zip(axes[0], series.items()):
        truth, pred = np.asarray(truth, float).ravel(), np.asarray(pred, float).ravel()
        ok = np.isfinite(truth) & np.isfinite(pred)
        truth, pred = truth[ok], pred[ok]
        if truth.size == 0:
            ax.set_title(f"{name}: no points")
            continue
        lo, hi = np.percentile(np.r_[truth, pred], [0.5, 99.5])
        ax.hexbin(truth, pred, gridsize=50, bins="log", cmap="Greys", extent=(lo, hi, lo, hi), mincnt=1)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        stats = binned_stats(truth, pred)
        if len(stats):
            ax.plot(stats[:, 0], stats[:, 1], "r-", lw=1.5, label="binned mean")
            ax.fill_between(stats[:, 0], stats[:, 2], stats[:, 3], color="r", alpha=0.2, label="95 % interval")
        ax.set(xlabel=f"true {units}", ylabel=f"predicted {units}", xlim=(lo, hi), ylim=(lo, hi),
               title=f"{name}  (n={truth.size}, RMSE={rmse(pred, truth):.3f})")
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def transect_plot(distance, values: dict, roughness: dict, path, units: str = "", shade=None, title: str = "",
                  shade_label: str = "hidden (holes)") -> Path:
    """Values and roughness along a line; ``shade`` marks (boolean per sample) e.g. holes."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, v in values.items():
        top.plot(distance, v, label=name, lw=2.2 if name == "truth" else 1.3, color="k" if name == "truth" else None)
    for name, r in roughness.items():
        bottom.plot(distance, r, label=name, lw=2.2 if name == "truth" else 1.3, color="k" if name == "truth" else None)
    if shade is not None and np.any(shade):
        for ax in (top, bottom):
            ax.fill_between(distance, 0, 1, where=shade, transform=ax.get_xaxis_transform(),
                            color="0.85", label=shade_label if ax is top else None)
    top.set(ylabel=units, title=title)
    bottom.set(ylabel=f"roughness (5×5 std) {units}", xlabel="distance along transect (km)")
    top.legend(fontsize=8, ncol=3)
    bottom.legend(fontsize=8, ncol=3)
    return save_figure(fig, path)


def loss_curves(history: list[dict], path, title: str = "") -> Path:
    """Train/val loss per epoch (and any other logged metric in a second panel)."""
    epochs = [h["epoch"] for h in history]
    other = sorted({k for h in history for k in h} - {"epoch", "loss", "val_loss"})
    fig, axes = plt.subplots(1, 2 if other else 1, figsize=(10 if other else 5.5, 3.8), squeeze=False)
    ax = axes[0, 0]
    for key in ("loss", "val_loss"):
        if any(key in h for h in history):
            ax.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=key.replace("_", " "))
    ax.set(xlabel="epoch", ylabel="loss (log scale)", yscale="log", title=title or "loss curves")
    ax.legend()
    if other:
        for key in other:
            axes[0, 1].plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=key)
        axes[0, 1].set(xlabel="epoch", title="other metrics")
        axes[0, 1].legend(fontsize=8)
    return save_figure(fig, path)


def spread_skill(tables: dict, path, units: str = "", title: str = "") -> Path:
    """Per name → a ``metrics.probabilistic.spread_skill`` table: left, the RMSE in each σ bin against its
    mean σ (on the 1:1 line where σ is right); right, the share within 1σ per bin against the Gaussian 68 %."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    top = max(max(t["rmse"].max(), t["mean sigma"].max()) for t in tables.values())
    left.plot([0, top], [0, top], "k--", lw=1, label="1:1 (RMSE = σ)")
    for name, t in tables.items():
        left.plot(t["mean sigma"], t["rmse"], "o-", label=name)
        right.plot(t.index, 100 * t["cover_1sigma"], "o-", label=name)
    right.axhline(68.27, color="k", ls="--", lw=1, label="Gaussian 68.3 %")
    left.set(xlabel=f"mean predicted σ in the bin {units}", ylabel=f"RMSE in the bin {units}",
             title="spread–skill (cells binned by σ decile)")
    right.set(xlabel="σ decile (1: smallest σ)", ylabel="% of cells within 1σ", ylim=(0, 100),
              title="1σ coverage per σ decile")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
