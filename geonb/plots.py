"""Figures as PNG files: maps with coastlines (offline), density scatter, transects, loss curves."""
from __future__ import annotations

from pathlib import Path

import cartopy.crs as ccrs
import cmocean
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from .outputs import atomic_path
from .metrics import rmse
from .paths import use_offline_cartopy
from .units import unit_text

use_offline_cartopy()

CMAPS = {"sst": cmocean.cm.thermal, "elevation": cmocean.cm.topo, "diff": cmocean.cm.balance,
         "sigma": cmocean.cm.amp, "error": cmocean.cm.amp, "thickness": cmocean.cm.ice,
         "split": ListedColormap(["#4c72b0", "#dd8452", "#c44e52"]), "mask": ListedColormap(["#ffffff", "#222222"])}
# Cells without a value: land (outside the field's domain) grey, as in the live views; a gap inside the
# domain (cloud, hidden or unscored cell) hatched on white, so neither reads as a value or as zero error.
LAND = "#a6a6a6"
GAP_HATCH = "////"
GAP_LINES = "#b4b4b4"
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


def _no_value(ax, proj, lat, lon, values, domain) -> set[str]:
    """Draw the cells without a value under the data: outside ``domain`` grey (land), inside it hatched
    (gaps); without a domain every such cell is grey ("no data"). Returns the legend entries used."""
    empty = ~np.isfinite(np.asarray(values, dtype=float))
    if domain is None:
        ax.pcolormesh(lon, lat, np.where(empty, 1.0, np.nan), transform=proj, cmap=ListedColormap([LAND]),
                      shading="nearest", zorder=0)
        return {"no data"} if empty.any() else set()
    domain = np.asarray(domain, dtype=bool)
    ax.pcolormesh(lon, lat, np.where(domain, np.nan, 1.0), transform=proj, cmap=ListedColormap([LAND]),
                  shading="nearest", zorder=0)
    gaps = empty & domain
    if gaps.any():
        hatched = ax.contourf(lon, lat, gaps.astype(float), levels=[0.5, 1.5], colors="none", hatches=[GAP_HATCH],
                              transform=proj, zorder=0)
        hatched.set_edgecolor(GAP_LINES)  # light lines: the values drawn over them stay the eye-catcher
        hatched.set_linewidth(0)
    return {"land"} | ({"gap"} if gaps.any() else set())


def _ticks(ax, labels: bool = True) -> None:
    """Faint graticule, with latitude/longitude labels on the left and bottom edges when ``labels``."""
    from cartopy.mpl.ticker import LatitudeLocator, LongitudeLocator

    grid = ax.gridlines(draw_labels=labels, linewidth=0.3, color="grey", alpha=0.6, linestyle=":",
                        xlocs=LongitudeLocator(nbins=4), ylocs=LatitudeLocator(nbins=5),  # labels that fit a small map
                        x_inline=False, y_inline=False)  # on the edges, also in polar projections
    grid.top_labels = grid.right_labels = False
    grid.xlabel_style = grid.ylabel_style = {"size": 6}


def _same_place(panel, lat, lon) -> bool:
    _, _, lat0, lon0, *_ = panel
    return np.array_equal(lat0, lat) and np.array_equal(lon0, lon)


def map_panels(panels, path, ncols: int = 4, suptitle: str = "", units: str = "", line=None, crs: str = "",
               domain=None, gap: str = "cloud / hidden") -> Path:
    """Panels of (title, values(y, x), y, x, kind[, domain]) on maps with coastlines and lat/lon ticks, in
    the grid's own projection (``crs``; lat/lon on PlateCarree by default). A map of the same place as the
    map to its left keeps the graticule but not the labels.

    ``kind`` picks the colour map (sst, elevation, diff, sigma, error); panels of the same
    kind share colour limits so they compare at a glance; ``diff`` is centred on zero. A tuple of
    names is a categorical map: values 0, 1, … are those categories, one colour and tick each, no units.
    ``domain`` (a boolean (y, x) mask of the cells that can hold a value, e.g. the sea; per panel as a sixth
    element, or for every panel of its shape) tells land (grey) from gaps (hatched, labelled ``gap`` in
    the legend); without it a cell with no value is grey, "no data".
    ``line`` = (ys, xs) in the grid's coordinates draws a transect on every panel.
    """
    proj = projection(crs)
    units = unit_text(units)
    limits = {}
    for _, values, _, _, kind, *_ in panels:
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
    _, _, lat0, lon0, *_ = panels[0]  # rows as tall as the maps are (wide seas, tall ice sheets), plus titles
    shape = float(np.clip(np.ptp(np.asarray(lat0)) / max(np.ptp(np.asarray(lon0)), 1e-9), 0.3, 1.6))
    fig = plt.figure(figsize=(3.8 * min(ncols, len(panels)), (2.4 * shape + 1.1) * nrows))
    fig.subplots_adjust(wspace=0.45)  # room for a colour bar's label before the next map's latitudes
    legend, maps = set(), []
    for k, (title, values, lat, lon, kind, *own) in enumerate(panels):
        ax = fig.add_subplot(nrows, min(ncols, len(panels)), k + 1, projection=proj)
        maps.append(ax)
        categories = kind if isinstance(kind, tuple) else ("train", "val", "test") if kind == "split" else None
        lo, hi = (-0.5, len(categories) - 0.5) if categories else limits.get(kind, (0, 1))
        cmap = ListedColormap(CATEGORY_COLOURS[:len(categories)]) if isinstance(kind, tuple) else colour_map(kind, lo, hi)
        mask = own[0] if own else domain if domain is not None and np.shape(domain) == np.shape(values) else None
        legend |= _no_value(ax, proj, lat, lon, values, mask)
        mesh = ax.pcolormesh(lon, lat, values, transform=proj, cmap=cmap, vmin=lo, vmax=hi, shading="nearest")
        ax.set_extent([float(np.min(lon)), float(np.max(lon)), float(np.min(lat)), float(np.max(lat))], crs=proj)
        ax.coastlines(resolution="50m", linewidth=0.7)
        # labels on the first map of a row's run of maps of one place (a third of 04's drawing time)
        _ticks(ax, labels=not (k % ncols and _same_place(panels[k - 1], lat, lon)))
        if line is not None:
            ax.plot(line[1], line[0], "m-", lw=1.5, transform=proj)
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.75, label="" if categories else units)
        if categories:
            bar.set_ticks(range(len(categories)), labels=list(categories))
    handles = [Patch(facecolor=LAND, label=name) for name in ("land", "no data") if name in legend]
    if "gap" in legend:
        handles.append(Patch(facecolor="white", edgecolor=GAP_LINES, hatch=GAP_HATCH, label=gap))
    if handles:  # just under the lowest map (maps keep their aspect, so their boxes are taller than they are)
        for ax in maps:
            ax.apply_aspect()
        bottom = min(ax.get_position().y0 for ax in maps)
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, bottom - 0.12 / nrows))
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
    units = unit_text(units)
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
    units = unit_text(units)
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
    shown = []
    for key in ("loss", "val_loss"):
        if any(key in h for h in history):
            shown += [h.get(key, np.nan) for h in history]
            ax.plot(epochs, shown[-len(history):], marker=".", label=key.replace("_", " "))
    # a log axis would hide every value ≤ 0 (a Gaussian NLL goes negative as σ shrinks): linear then
    log = bool(shown) and np.nanmin(np.asarray(shown, float)) > 0
    ax.set(xlabel="epoch", ylabel="loss (log scale)" if log else "loss", yscale="log" if log else "linear",
           title=title or "loss curves")
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
