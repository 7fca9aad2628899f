"""Draw hole masks over a field and save them as the run's "drawn" hole set.

Shapes come from HoloViews draw streams on the bokeh backend (freehand, polygon, box),
are rasterised onto the field's own lat/lon grid (cell centres inside a shape become
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
from matplotlib.path import Path as MplPath

from .errors import GeonbError
from .io import open_dataset, write_netcdf
from .outputs import atomic_path

MASK_FILE = "drawn_mask.nc"
BACKUP_FILE = "drawn_mask.previous.nc"
MASK_SOURCE = "geonb.draw"  # attribute marking files we wrote (and may therefore replace)
TOOLS = ("freehand", "polygon", "box")
BRUSHES = ("fill", "stroke")


# ---------------------------------------------------------------- rasterisation
def _axis(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype="float64")
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise GeonbError(f"{name} must be a 1-D array of at least 2 finite values; got shape {values.shape}. "
                         f"Pass the field's {name} coordinate (field.{name}).")
    steps = np.diff(values)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise GeonbError(f"{name} is not monotonic; sort the field first (field.sortby('{name}')).")
    return values


def _centres(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes and latitudes, both shaped (lat, lon)."""
    lon2, lat2 = np.meshgrid(_axis(lon, "lon"), _axis(lat, "lat"))
    return lon2, lat2


def _lon_copies(lon2: np.ndarray):
    # A shape drawn in -180..180 must hit a 0..360 grid (and vice versa), and one that
    # crosses the seam must hit both sides: test each centre at lon-360, lon, lon+360.
    return (lon2 - 360.0, lon2, lon2 + 360.0)


def _points(xs, ys, what: str) -> np.ndarray:
    xs = np.asarray(xs, dtype="float64").ravel()
    ys = np.asarray(ys, dtype="float64").ravel()
    if xs.shape != ys.shape:
        raise GeonbError(f"{what}: xs has {xs.size} values but ys has {ys.size}; give one y per x.")
    keep = np.isfinite(xs) & np.isfinite(ys)
    return np.column_stack([xs[keep], ys[keep]])


def rasterise_polygon(xs, ys, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre lies inside the polygon (lon=xs, lat=ys).

    The polygon is closed automatically (a freehand stroke acts as a lasso). Works for
    increasing or decreasing latitude/longitude and for either longitude convention.
    """
    lon2, lat2 = _centres(lat, lon)
    vertices = _points(xs, ys, "polygon")
    inside = np.zeros(lat2.shape, dtype=bool)
    if len(vertices) < 3:
        return inside
    path = MplPath(np.vstack([vertices, vertices[:1]]), closed=True)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    for shifted in _lon_copies(lon2):
        # Only test centres inside the bounding box: a 1° global grid has 64 800 of them.
        near = (shifted >= lo[0]) & (shifted <= hi[0]) & (lat2 >= lo[1]) & (lat2 <= hi[1])
        if near.any():
            inside[near] |= path.contains_points(np.column_stack([shifted[near], lat2[near]]))
    return inside


def rasterise_box(x0, y0, x1, y1, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre lies in the box (edges included)."""
    lon2, lat2 = _centres(lat, lon)
    (xa, xb), (ya, yb) = sorted((float(x0), float(x1))), sorted((float(y0), float(y1)))
    in_lat = (lat2 >= ya) & (lat2 <= yb)
    return np.logical_or.reduce([in_lat & (s >= xa) & (s <= xb) for s in _lon_copies(lon2)])


def rasterise_stroke(xs, ys, width, lat, lon) -> np.ndarray:
    """Boolean (lat, lon) array: cells whose centre is within ``width / 2`` grid cells of the line."""
    if not width > 0:
        raise GeonbError(f"brush width must be > 0 grid cells; got {width}.")
    lon2, lat2 = _centres(lat, lon)
    vertices = _points(xs, ys, "stroke")
    painted = np.zeros(lat2.shape, dtype=bool)
    if len(vertices) == 0:
        return painted
    # Measure distances in grid cells so a brush is as wide in lon as in lat.
    dlon, dlat = np.median(np.abs(np.diff(lon2[0]))), np.median(np.abs(np.diff(lat2[:, 0])))
    radius = width / 2.0
    segments = list(zip(vertices[:-1], vertices[1:])) or [(vertices[0], vertices[0])]
    for shifted in _lon_copies(lon2):
        px, py = shifted / dlon, lat2 / dlat
        for (ax, ay), (bx, by) in segments:
            ax, bx, ay, by = ax / dlon, bx / dlon, ay / dlat, by / dlat
            near = ((px >= min(ax, bx) - radius) & (px <= max(ax, bx) + radius)
                    & (py >= min(ay, by) - radius) & (py <= max(ay, by) + radius))
            if not near.any():
                continue
            qx, qy = px[near] - ax, py[near] - ay
            sx, sy = bx - ax, by - ay
            t = np.clip((qx * sx + qy * sy) / max(sx * sx + sy * sy, 1e-12), 0.0, 1.0)
            painted[near] |= (qx - t * sx) ** 2 + (qy - t * sy) ** 2 <= radius ** 2
    return painted


def rasterise(kind: str, data: dict | None, lat, lon, brush: str = "fill", width: float = 1.0) -> np.ndarray:
    """Union of every shape in a draw stream's ``data`` (``kind`` in TOOLS) on the grid."""
    if kind not in TOOLS:
        raise GeonbError(f"unknown drawing tool {kind!r}; use one of {', '.join(TOOLS)}.")
    if brush not in BRUSHES:
        raise GeonbError(f"unknown brush {brush!r}; use one of {', '.join(BRUSHES)}.")
    lon2, _ = _centres(lat, lon)
    mask = np.zeros(lon2.shape, dtype=bool)
    if not data:
        return mask
    if kind == "box":
        for x0, y0, x1, y1 in zip(*(data.get(k, []) for k in ("x0", "y0", "x1", "y1"))):
            mask |= rasterise_box(x0, y0, x1, y1, lat, lon)
        return mask
    for xs, ys in zip(data.get("xs", []), data.get("ys", [])):
        if kind == "freehand" and brush == "stroke":
            mask |= rasterise_stroke(xs, ys, width, lat, lon)
        else:
            mask |= rasterise_polygon(xs, ys, lat, lon)
    return mask


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
        _axis(self.field["lat"], "lat"), _axis(self.field["lon"], "lon")
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
        return Markdown(f"*The {run.task} task ({run['arch']}) takes no drawn holes: drawing applies to gap filling "
                        "(the main job's `dincae`, or `-p arch unet` / `ctxgan`).*")
    field = run_field(run)
    return MaskDrawer(field, run.path(MASK_FILE), time_index=time_index,
                      title=f"{field.attrs.get('long_name', field.name)}: draw holes")
