"""Exploration views for notebooks 01 and 04: live hvplot views in JupyterLab, PNGs elsewhere.

In a live JupyterLab kernel ``explore(run, what)`` shows hvplot images with a time (01)
or patch (04) slider, truth / prediction / difference panels with linked axes, and
hover values with units. Where no browser is watching (papermill, nbval, the CLI) it
shows a static PNG instead: the executed notebook stays small and nothing waits on a
browser. ``GEONB_INTERACTIVE=1`` / ``0`` forces either.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import GeonbError
from .io import open_dataset
from .units import unit_text

WHATS = ("field", "predictions")
# A kernel whose parent is one of these serves a browser; any other parent (papermill, the
# geonb CLI, pytest/nbval, nbconvert) runs the notebook headless and gets the static view.
_BROWSER_PARENTS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter lab", "jupyter notebook",
                    "jupyter server", "jupyterlab", "jupyter_server", "voila", "vscode", "code-server")


def live_frontend() -> bool:
    """True when a notebook kernel is (probably) driven by a browser, not a batch runner."""
    forced = os.environ.get("GEONB_INTERACTIVE", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        from IPython import get_ipython

        if get_ipython() is None or "IPKernelApp" not in get_ipython().config:
            return False
    except ImportError:
        return False
    try:
        cmdline = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # no /proc (macOS, Windows): assume a person is watching
    return any(name in cmdline for name in _BROWSER_PARENTS)


_BOKEH_READY = False
# Panel's loader waits 100 ms before it runs BokehJS ("a head-start for older versions"); a
# jupyter_bokeh widget shown in the same cell (the drawer) can be created in that gap and fail
# ("Failed to create view for BokehView … reading 'require'"): run it at once instead. With
# inline resources it has nothing to fetch, so it then runs BokehJS before the next output.
_DEFERRED_LOAD = "setTimeout(load_or_wait, 100)\n}(window));"
_IMMEDIATE_LOAD = "load_or_wait()\n}(window));"


def use_bokeh() -> None:
    """HoloViews' bokeh backend in this kernel (once): the Python side only; the page's
    JS comes with each view (:func:`bokehjs_with_this_output`)."""
    global _BOKEH_READY
    if not _BOKEH_READY:
        import holoviews as hv
        import panel as pn
        from IPython.utils.capture import capture_output

        # hv.extension's inline flag does not reach Panel, which renders the widgets'
        # plots: without this Panel fetches BokehJS from a CDN and the plot stays blank.
        pn.config.inline = True
        with capture_output(stdout=False, stderr=False):  # its JS output: sent with each view instead
            hv.extension("bokeh", inline=True, logo=False)
        _BOKEH_READY = True


def bokehjs_with_this_output() -> None:
    """Put BokehJS, Panel's JS and its comm manager (inline) into the output being made.

    Call it with every live view. HoloViews and Panel load the JS once per kernel, but it
    lives in the browser page: a reloaded tab or a reopened notebook talks to the same
    kernel with none of it, and each view there stays blank or fails ("Failed to create
    view for BokehView") until a kernel restart. Sent with each view, it costs ~6 MB per
    view cell in the saved notebook (one load per kernel did before); in a page that has
    BokehJS already, Panel's loader keeps the Bokeh object its views use.
    """
    use_bokeh()
    from IPython import get_ipython

    if get_ipython() is None:
        return
    from IPython.display import publish_display_data
    from IPython.utils.capture import capture_output
    from panel.io.notebook import load_notebook

    with capture_output(stdout=False, stderr=False) as loader:
        load_notebook(inline=True)
    for output in loader.outputs:
        data = {mime: value.replace(_DEFERRED_LOAD, _IMMEDIATE_LOAD) if isinstance(value, str) else value
                for mime, value in output.data.items()}
        publish_display_data(data, output.metadata)


def run_field(run) -> xr.DataArray:
    """The run's prepared field (time, lat, lon) from 01's ``field.nc`` (built if missing)."""
    run.require("data_prep")
    path = run.path("field.nc")
    ds = open_dataset(path)
    if "field" not in ds.data_vars:
        raise GeonbError(f"{path} has no 'field' variable ({list(ds.data_vars)}); re-run 01_data_prep for this run.")
    return ds["field"]


LAND = "#a6a6a6"  # NaN cells (land, no data) grey, apart from the white page and from 0 on a diverging map


def _label(da: xr.DataArray) -> str:
    units = unit_text(da.attrs.get("units", ""))
    name = str(da.name or "value")
    return f"{name} ({units})" if units else name


def quantity(name: str, units: str) -> str:
    """The colour-map kind of a field (``plots.CMAPS``): one colour map per quantity across geonb's figures."""
    text = f"{name} {units}".lower()
    if unit_text(units) in ("°C", "K") or "sst" in text or "temperature" in text:
        return "sst"
    return next((k for k in ("thickness", "elevation") if k in text), "")


def colours(kind: str, lo: float, hi: float) -> list[str]:
    """``plots.colour_map`` as the hex list bokeh takes."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from .plots import colour_map

    cmap = colour_map(kind, lo, hi)
    cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
    return [to_hex(c) for c in cmap(np.linspace(0, 1, 256))]


def robust_limits(values) -> tuple[float, float]:
    """The 1–99 % range of the finite values: a few extreme cells do not wash out the map."""
    lo, hi = np.nanpercentile(np.asarray(values, dtype="float64"), [1, 99])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _hvplot(da: xr.DataArray):
    # hvPlot directly, not `import hvplot.xarray`: that import re-runs the bokeh extension
    # without inline resources, i.e. from a CDN this machine cannot reach.
    from hvplot import hvPlot

    return hvPlot(da)


# ---------------------------------------------------------------- 04's predictions
_NOT_METHODS = ("truth", "holes", "input", "cv", "valid", "split")


def prediction_files(run) -> dict[str, Path]:
    """04's prediction files by name: inpaint writes one per hole set, clouds/downscale one."""
    run.require("error_maps")
    found = run.predictions()
    if not found:
        raise GeonbError(f"no predictions under {run.dir / run.task} although 04_error_maps ran; re-run 04 for this run.")
    return found


def _method(ds: xr.Dataset, method: str | None, path) -> str:
    names = [m for m in ds.attrs.get("methods", "").split(",") if m in ds.data_vars]
    names = names or [v for v in ds.data_vars if v not in _NOT_METHODS and not str(v).endswith("_sigma")]
    if method is None:
        method = "prediction" if "prediction" in ds.data_vars else names[0] if names else None
    if method not in ds.data_vars or method in _NOT_METHODS:
        raise GeonbError(f"{path}: no method {method!r}; choose one of {', '.join(names)} (method=...).")
    return method


class _Frames:
    """One 2-D (lat, lon) map per sample/time of a predictions Dataset, whatever its layout:
    (sample, y, x) with per-sample lat/lon (inpaint), (time, lat, lon), or one (lat, lon) or
    projected (y, x) map (downscale)."""

    def __init__(self, ds: xr.Dataset, method: str):
        self.ds, self.method = ds, method
        self.units = unit_text(ds["truth"].attrs.get("units", "") or ds.attrs.get("units", ""))
        self.kind = quantity(str(ds["truth"].attrs.get("long_name", "")) + " " + method, self.units)
        extra = [d for d in ds["truth"].dims if d not in ("lat", "lon", "y", "x")]
        if len(extra) > 1:
            raise GeonbError(f"predictions have dims {ds['truth'].dims}; expected one sample/time dim at most.")
        self.key = extra[0] if extra else None
        self.n = ds.sizes[self.key] if self.key else 1

    def __call__(self, what: str, i: int) -> xr.DataArray:
        pick = (lambda da: da.isel({self.key: i})) if self.key and self.key in self.ds["truth"].dims else (lambda da: da)
        truth = pick(self.ds["truth"]).values
        values = {"truth": truth, "prediction": pick(self.ds[self.method]).values}
        values["difference"] = values["prediction"] - truth
        ydim, xdim = ("lat", "lon") if "lat" in self.ds.variables else ("y", "x")
        lat, lon = self.ds[ydim], self.ds[xdim]
        lat = (lat.isel({self.key: i}) if self.key in lat.dims else lat).values
        lon = (lon.isel({self.key: i}) if self.key in lon.dims else lon).values
        name = self.method if what == "prediction" else what
        return xr.DataArray(values[what], dims=(ydim, xdim), coords={ydim: lat, xdim: lon},
                            name=f"{name} ({self.units})" if self.units else name)

    def limits(self, what: str) -> tuple[float, float]:
        """Truth and prediction on the truth's range; the difference centred on 0."""
        truth = self.ds["truth"].values
        if what == "difference":
            spread = float(np.nanmax(np.abs(self.ds[self.method].values - truth))) or 1.0
            return -spread, spread
        return robust_limits(truth)

    def colours(self, what: str) -> list[str]:
        return colours("diff" if what == "difference" else self.kind, *self.limits(what))


_PANELS = ("truth", "prediction", "difference")


def _prediction_panels(frames: _Frames, title: str):
    import holoviews as hv
    import panel as pn

    def panel(what):
        def draw(index):
            da = frames(what, int(index))
            return _hvplot(da).image(
                x=da.dims[1], y=da.dims[0], cmap=frames.colours(what), clim=frames.limits(what), frame_width=210,
                data_aspect=1, hover=True, title=f"{title}: {frames.method if what == 'prediction' else what}").opts(
                    framewise=True, clipping_colors={"NaN": LAND})
        key = hv.Dimension(frames.key or "map", values=list(range(frames.n)))
        return hv.DynamicMap(draw, kdims=[key])
    # One layout: shared axes link zoom/pan across the panels and one slider drives all three.
    # Shown through Panel, which inlines its stylesheets (HoloViews' display links a CDN).
    layout = hv.Layout([panel(w) for w in _PANELS]).opts(shared_axes=True).cols(3)
    return pn.panel(layout)


def _field_colours(field: xr.DataArray) -> tuple[list[str], tuple[float, float]]:
    limits = robust_limits(field.values)
    return colours(quantity(str(field.name), field.attrs.get("units", "")), *limits), limits


def _field_view(field: xr.DataArray):
    cmap, limits = _field_colours(field)
    view = _hvplot(field.rename(_label(field))).image(
        x=field.dims[-1], y=field.dims[-2], groupby="time", cmap=cmap, clim=limits, frame_width=560, data_aspect=1,
        hover=True, widget_location="bottom", title=f"{field.name}: pick a time")
    plot = view[0]  # hvPlot lays out the map and its time slider; the map takes the NaN colour (hvPlot does not)
    plot.object = plot.object.opts(clipping_colors={"NaN": LAND})
    return view


# ---------------------------------------------------------------- static fallback
def _static_png(panels: list[tuple[str, xr.DataArray, list[str], tuple[float, float]]], path: Path,
                title: str) -> Path:
    """The live view's panels (name, map, colours, limits) as one PNG, NaN cells grey as there."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from .plots import save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, da, cmap, (lo, hi)) in zip(axes[0], panels):
        x, y = da.dims[1], da.dims[0]
        ax.set_facecolor(LAND)
        mesh = ax.pcolormesh(da[x].values if x in da.coords else np.arange(da.shape[1]),
                             da[y].values if y in da.coords else np.arange(da.shape[0]),
                             da.values, cmap=ListedColormap(cmap), vmin=lo, vmax=hi, shading="auto")
        if x in ("lon", "x") and y in ("lat", "y"):
            ax.set_aspect("equal")  # a degree (or a metre) is as wide as it is tall: no squeezed world
        fig.colorbar(mesh, ax=ax, label=unit_text(da.attrs.get("units", "")))
        ax.set_title(name)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    fig.suptitle(title + " (static view: open in JupyterLab for sliders and hover)")
    fig.tight_layout()
    return save_figure(fig, path)


def explore(run, what: str = "field", index: int = 0, hole_set: str | None = None,
            method: str | None = None, interactive: bool | None = None):
    """An exploration view for a run: ``what="field"`` (01) or ``"predictions"`` (04).

    For predictions, ``hole_set`` picks the file (inpaint writes one per hole set; default
    the first) and ``method`` the model or baseline shown beside the truth. ``interactive
    =None`` picks the live hvplot view in a browser kernel and a static PNG (map ``index``)
    under papermill/nbval. Returns the object to display.
    """
    if what not in WHATS:
        raise GeonbError(f"explore what={what!r}: use one of {', '.join(WHATS)}.")
    live = live_frontend() if interactive is None else interactive
    if what == "field":
        field = run_field(run)
        if live:
            bokehjs_with_this_output()
            return _field_view(field)
        index = _check_index(index, field.sizes["time"], "time")
        when = field["time"].values[index]
        when = np.datetime_as_string(when, unit="D") if np.issubdtype(np.asarray(when).dtype, np.datetime64) else when
        title = f"{field.name} at time {when}"
        png = _static_png([(_label(field), field.isel(time=index), *_field_colours(field))],
                          run.path("explore", "field.png"), title)
    else:
        files = prediction_files(run)
        name = hole_set or next(iter(files))
        if name not in files:
            raise GeonbError(f"no predictions for {name!r}; this run has: {', '.join(files)} (hole_set=...).")
        ds = open_dataset(files[name], "truth")
        frames = _Frames(ds, _method(ds, method, files[name]))
        title = name if name != "predictions" else frames.method
        if live:
            bokehjs_with_this_output()
            return _prediction_panels(frames, title)
        index = _check_index(index, frames.n, frames.key or "map")
        png = _static_png([(str(frames(w, index).name), frames(w, index), frames.colours(w), frames.limits(w))
                           for w in _PANELS],
                          run.path("explore", f"predictions_{name}_{index}.png"),
                          f"{title}, {frames.key or 'map'} {index}")
    from IPython.display import Image

    return Image(filename=str(png))


def _check_index(index: int, size: int, dim: str) -> int:
    if not -size <= index < size:
        raise GeonbError(f"index {index} is out of range: the {dim} axis has {size} entries (0..{size - 1}).")
    return index % size
