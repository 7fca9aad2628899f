"""Draw hole masks over a field and save them as the run's "drawn" hole set.

Shapes come from HoloViews draw streams on the bokeh backend (freehand, polygon, box),
are rasterised onto the field's own lat/lon grid (``geonb.rasterise``: cell centres inside a shape become
holes), and are saved as ``<run_dir>/<task>/drawn_mask.nc``: a ``uint8`` DataArray
``mask`` with dims (lat, lon) and exactly the field's coordinates, 1 = hole.

Headless use gives the same mask as the browser: set a stream's data from Python
(``drawer.freehand.event(data={"xs": [[...]], "ys": [[...]]})``) and call
``drawer.add()`` / ``drawer.save()``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import GeonbError
from .io import open_dataset, write_netcdf
from .outputs import atomic_path
from .rasterise import BRUSHES, TOOLS, check_axis, rasterise

MASK_FILE = "drawn_mask.nc"
BACKUP_FILE = "drawn_mask.previous.nc"
MASK_SOURCE = "geonb.draw"  # attribute marking files we wrote (and may therefore replace)


# ---------------------------------------------------------------- the mask file
def mask_dataarray(mask: np.ndarray, field: xr.DataArray, history: list | None = None) -> xr.DataArray:
    """The saved form: uint8 ``mask`` (lat, lon), 1 = hole, the field's own coordinates."""
    return xr.DataArray(
        np.asarray(mask, dtype="uint8"),
        dims=("lat", "lon"),
        coords={"lat": field["lat"].values, "lon": field["lon"].values},
        name="mask",
        attrs={
            "long_name": "drawn hole mask",
            "flag_values": "0 1",
            "flag_meanings": "observed hole",
            "source": MASK_SOURCE,
            "shapes": json.dumps(history or []),
        },
    )


def save_mask(mask: np.ndarray, field: xr.DataArray, path, history: list | None = None) -> Path:
    """Write the mask atomically. A mask we wrote before is kept as ``drawn_mask.previous.nc``
    beside it; any other existing file at ``path`` is left alone (error)."""
    path = Path(path)
    if path.exists():
        try:
            ours = open_dataset(path)["mask"].attrs.get("source") == MASK_SOURCE
        except (GeonbError, KeyError):
            ours = False
        if not ours:
            raise GeonbError(f"{path} exists and was not written by geonb.draw; not overwriting it. "
                             "Choose another path or move that file away.")
        with atomic_path(path.with_name(BACKUP_FILE) if path.name == MASK_FILE
                         else path.with_suffix(".previous.nc")) as tmp:
            shutil.copy2(path, tmp)
    return write_netcdf(mask_dataarray(mask, field, history), path)


def load_mask(path, field: xr.DataArray) -> np.ndarray:
    """A saved mask as a boolean (lat, lon) array; its grid must be the field's."""
    mask = open_dataset(path, "mask")["mask"]
    for name in ("lat", "lon"):
        if name not in mask.coords or not np.allclose(mask[name].values, field[name].values):
            raise GeonbError(f"{path}: its {name} coordinates differ from the field's grid. "
                             "Draw the mask again on this run's field (geonb.draw_mask(run)).")
    return mask.values.astype(bool)


# ---------------------------------------------------------------- the widget
class MaskDrawer:
    """A map of ``field`` with freehand / polygon / box tools and add / erase / clear / save.

    ``field``: DataArray with dims (lat, lon) or (time, lat, lon); ``path``: where
    :meth:`save` writes the mask. Display it in a notebook (it is its own widget).
    """

    def __init__(self, field: xr.DataArray, path, time_index: int = 0, title: str = "draw holes"):
        if not isinstance(field, xr.DataArray) or not {"lat", "lon"} <= set(field.dims):
            raise GeonbError("draw needs an xarray.DataArray with lat and lon dims "
                             "(geonb.load_field(...) gives one).")
        if "time" in field.dims:
            field = field.isel(time=time_index)
        extra = [d for d in field.dims if d not in ("lat", "lon")]
        if extra:
            raise GeonbError(f"field has extra dims {extra}; select one level first (field.isel(...)).")
        self.field = field.transpose("lat", "lon")
        check_axis(self.field["lat"], "lat"), check_axis(self.field["lon"], "lon")
        self.path = Path(path)
        self.title = title
        self.lat, self.lon = self.field["lat"].values, self.field["lon"].values
        self.mask = np.zeros(self.field.shape, dtype=bool)
        self.history: list[dict] = []  # every add/erase with its shapes: saved in the file
        self.brush, self.width = "fill", 3.0
        if self.path.exists():
            self.mask = load_mask(self.path, self.field)
            self.history = json.loads(open_dataset(self.path)["mask"].attrs.get("shapes", "[]"))
        self._figure = None
        self._sources: dict = {}
        self._widget = None
        self._build_plot()

    # -- HoloViews objects (no browser needed: streams work headless)
    def _build_plot(self):
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401  (styles need a backend; no display needed)

        hv.Store.set_current_backend("bokeh")
        self._hv = hv
        self._mask_pipe = hv.streams.Pipe(data=self.mask)
        # Styled in place (clone=False): each stream must stay attached to the element shown.
        self.shapes = {
            "freehand": hv.Path([]).opts(color="black", line_width=2, clone=False),
            "polygon": hv.Polygons([]).opts(fill_alpha=0.2, line_color="black", clone=False),
            "box": hv.Rectangles([]).opts(fill_alpha=0.2, line_color="black", clone=False),
        }
        for kind, element in self.shapes.items():
            element.opts(hooks=[self._capture(kind)], clone=False)
        self.freehand = hv.streams.FreehandDraw(source=self.shapes["freehand"])
        self.polygon = hv.streams.PolyDraw(source=self.shapes["polygon"], show_vertices=True)
        self.box = hv.streams.BoxEdit(source=self.shapes["box"])
        self.streams = {"freehand": self.freehand, "polygon": self.polygon, "box": self.box}

    def _mask_image(self, data):
        # Cells off the mask fall below clim and are drawn transparent (NaN would warn when empty).
        return self._hv.Image((self.lon, self.lat, data.astype("float32")), kdims=["lon", "lat"], vdims="hole").opts(
            cmap=["#d62728"], alpha=0.55, clim=(0.5, 1), clipping_colors={"min": "transparent"}, tools=[])

    def plot(self):
        """The HoloViews overlay: field, current mask (red), and the drawing layers."""
        hv = self._hv
        units = self.field.attrs.get("units", "")
        label = f"{self.field.name or 'value'} ({units})" if units else str(self.field.name or "value")
        base = hv.Image(self.field.rename(label), kdims=["lon", "lat"], vdims=[label]).opts(
            cmap="viridis", colorbar=True, tools=["hover"], frame_width=640,
            data_aspect=1, title=self.title, active_tools=["freehand_draw"])
        masked = hv.DynamicMap(self._mask_image, streams=[self._mask_pipe])
        return base * masked * self.shapes["freehand"] * self.shapes["polygon"] * self.shapes["box"]

    def _capture(self, kind: str):
        # Keep the live bokeh figure and data sources: the tool choice sets the active
        # tool on the figure, and add/erase empty the drawn shapes in the browser too.
        def hook(plot, element):
            self._figure = plot.state
            self._sources[kind] = plot.handles.get("source")
        return hook

    # -- mask operations (what the buttons call)
    def pending(self) -> np.ndarray:
        """The shapes drawn but not yet added/erased, rasterised."""
        mask = np.zeros_like(self.mask)
        for kind, stream in self.streams.items():
            mask |= rasterise(kind, stream.data, self.lat, self.lon, self.brush, self.width)
        return mask

    def _shapes(self) -> dict:
        return {k: {key: [np.asarray(v).tolist() for v in vals] for key, vals in s.data.items()}
                for k, s in self.streams.items() if s.data and any(len(v) for v in s.data.values())}

    def _apply(self, op: str) -> int:
        drawn = self.pending()
        if drawn.any():
            self.history.append({"op": op, "brush": self.brush, "width": self.width, "shapes": self._shapes()})
        self.mask = (self.mask | drawn) if op == "add" else (self.mask & ~drawn)
        self._forget_shapes()
        self._mask_pipe.send(self.mask)
        return int(drawn.sum())

    def add(self) -> int:
        """Add the drawn shapes to the mask; returns how many cells they cover."""
        n = self._apply("add")
        self._say(f"added {n} cells")
        return n

    def erase(self) -> int:
        """Remove the drawn shapes' cells from the mask."""
        n = self._apply("erase")
        self._say(f"erased {n} cells")
        return n

    def clear(self) -> None:
        """Empty the mask and the drawn shapes (the saved file is untouched until save)."""
        self.mask = np.zeros_like(self.mask)
        self.history = []
        self._forget_shapes()
        self._mask_pipe.send(self.mask)
        self._say("cleared")

    def save(self) -> Path:
        """Add any shapes still drawn, then write the mask; a previous one is kept as backup."""
        if self.pending().any():
            self._apply("add")
        if not self.mask.any():
            raise GeonbError("the mask is empty: draw a shape (and press 'add to mask') before saving.")
        had = self.path.exists()
        save_mask(self.mask, self.field, self.path, self.history)
        backup = f"; previous mask kept as {BACKUP_FILE}" if had and self.path.name == MASK_FILE else ""
        self._say(f"saved {int(self.mask.sum())} hole cells to {self.path}{backup}. "
                  "It is the 'drawn' hole set: 03-05 rebuild the hole sets with it when they next run")
        return self.path

    def _forget_shapes(self):
        for kind, stream in self.streams.items():
            source = self._sources.get(kind)
            if source is not None:
                source.data = {key: [] for key in source.data}
            empty = {"x0": [], "y0": [], "x1": [], "y1": []} if kind == "box" else {"xs": [], "ys": []}
            stream.event(data=empty)

    # -- the widget (built on first display)
    def _say(self, text: str):
        self.message = f"{text}. Mask: {int(self.mask.sum())} cells."
        if hasattr(self, "_status"):
            self._status.value = self.message

    def _set_tool(self, change):
        from bokeh.models import BoxEditTool, FreehandDrawTool, PolyDrawTool

        wanted = {"freehand": FreehandDrawTool, "polygon": PolyDrawTool, "box": BoxEditTool}[change["new"]]
        if self._figure is not None:
            for tool in self._figure.toolbar.tools:
                if isinstance(tool, wanted):
                    self._figure.toolbar.active_drag = tool
        self.brush_choice.disabled = self.width_slider.disabled = change["new"] != "freehand"

    @property
    def widget(self):
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def _build_widget(self):
        import ipywidgets as w
        import panel as pn

        from .interactive import use_bokeh

        use_bokeh()
        self.tool_choice = w.ToggleButtons(options=list(TOOLS), value="freehand", description="tool")
        self.brush_choice = w.ToggleButtons(options=list(BRUSHES), value=self.brush, description="freehand",
                                            tooltips=["fill the drawn outline (lasso)", "paint along the stroke"])
        self.width_slider = w.FloatSlider(value=self.width, min=1, max=20, step=1, description="width (cells)")
        self.tool_choice.observe(self._set_tool, names="value")
        self.brush_choice.observe(lambda c: setattr(self, "brush", c["new"]), names="value")
        self.width_slider.observe(lambda c: setattr(self, "width", float(c["new"])), names="value")
        buttons = []
        for label, action, style in (("add to mask", self.add, "success"), ("erase", self.erase, "warning"),
                                     ("clear", self.clear, "danger"), ("save", self.save, "primary")):
            button = w.Button(description=label, button_style=style)
            button.on_click(self._guarded(action))
            buttons.append(button)
        self._status = w.HTML(value="draw on the map, then add to mask / erase; save writes "
                                    f"<code>{self.path}</code>")
        plot = pn.ipywidget(pn.pane.HoloViews(self.plot(), backend="bokeh"))
        inline_stylesheets(plot)
        return w.VBox([w.HBox([self.tool_choice]), w.HBox([self.brush_choice, self.width_slider]),
                       w.HBox(buttons), self._status, plot])

    def _guarded(self, action):
        # A button must report a bad state in the status line, not a traceback in the log.
        def click(_button):
            try:
                action()
            except GeonbError as exc:
                self._status.value = f"<b>not done:</b> {exc}"
        return click

    def _ipython_display_(self):
        from IPython.display import display

        from .interactive import bokehjs_with_this_output

        # Before the widget, on every display: its BokehView needs BokehJS in this page.
        bokehjs_with_this_output()
        display(self.widget)


def inline_stylesheets(widget) -> None:
    """Swap the CDN stylesheet links of a ``pn.ipywidget`` for inline CSS (offline use).

    Panel inlines them only on its own notebook display path, not inside ipywidgets.
    """
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    root = widget._model
    for model in root.select({"type": UIElement}):
        patch_inline_stylesheets(model)
    widget.update_from_model(root)


def draw_mask(run, time_index: int = 0) -> MaskDrawer:
    """The mask-drawing widget for a run: draws on its prepared field, saves ``drawn_mask.nc``.

    ``run``: a :class:`geonb.Run` (its 01 step is built first if needed). Display the
    returned object in a notebook; ``drawer.save()`` writes the "drawn" hole set. For a task that
    reads no drawn holes (all but gap filling) it is a one-line note saying so, not a widget.
    """
    from .interactive import run_field

    if MASK_FILE not in run.spec.step_files.get("simulate", ()):
        from IPython.display import Markdown

        # 02 shows this cell for every task; only gap filling reads a drawn hole set
        return Markdown(f"*The {run.task} task ({run['arch']}) takes no drawn holes: drawing applies to the gap-filling "
                        "tasks (`geonb archs` lists their archs).*")
    field = run_field(run)
    return MaskDrawer(field, run.path(MASK_FILE), time_index=time_index,
                      title=f"{field.attrs.get('long_name', field.name)}: draw holes")
