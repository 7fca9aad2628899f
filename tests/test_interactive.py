"""explore(): live views build (linked panels, hover with units) and the static fallback
writes a PNG, for each task's predictions layout; no training needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from geonb.errors import GeonbError
from geonb.interactive import explore, live_frontend
from geonb.workflow import Run


class FakeRun:
    """The parts of geonb.Run that explore() uses, over files written by the test."""

    def __init__(self, root: Path, task: str = "inpaint"):
        self.dir, self.task = root, task

    def require(self, step):
        pass

    # the folder layout is Run's own, so the test follows it
    path = Run.path
    folder = Run.folder
    prediction_path = Run.prediction_path
    predictions = Run.predictions


LAT, LON = np.arange(9.5, -10, -1.0), np.arange(0.5, 30)


def write_field(run):
    values = np.random.default_rng(0).normal(15, 2, (2, LAT.size, LON.size)).astype("float32")
    field = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": [0, 1], "lat": LAT, "lon": LON},
                         attrs={"units": "degC"})
    field.to_dataset(name="field").to_netcdf(run.path("field.nc"))


def inpaint_predictions(run):
    """04 of inpaint: one file per hole set, (sample, y, x) with per-sample lat/lon."""
    rng = np.random.default_rng(1)
    truth = rng.normal(15, 2, (3, 8, 8))
    ds = xr.Dataset({"truth": (("sample", "y", "x"), truth, {"units": "degC"}),
                     "holes": (("sample", "y", "x"), (rng.random((3, 8, 8)) < 0.2).astype("uint8")),
                     "unet": (("sample", "y", "x"), truth + 0.1, {"units": "degC"}),
                     "biharmonic": (("sample", "y", "x"), truth - 0.2, {"units": "degC"})},
                    coords={"lat": (("sample", "y"), np.stack([LAT[i:i + 8] for i in (0, 4, 8)])),
                            "lon": (("sample", "x"), np.stack([LON[i:i + 8] for i in (0, 10, 20)]))},
                    attrs={"methods": "unet,biharmonic"})
    ds.to_netcdf(run.prediction_path("drawn"))


def downscale_predictions(run):
    """04 of downscale: one projected (y, x) map with its mask and split in predictions/test_region.nc,
    units as a file attribute."""
    truth = np.random.default_rng(2).normal(500, 50, (LAT.size, LON.size))
    yx = ("y", "x")
    xr.Dataset({"truth": (yx, truth), "valid": (yx, np.ones(truth.shape, "uint8")),
                "split": (yx, np.zeros(truth.shape, "int8")), "srcnn_x4": (yx, truth + 1)},
               coords={"y": LAT * 1e5, "x": LON * 1e5}, attrs={"units": "m"}).to_netcdf(run.prediction_path("test_region"))


def test_static_fallback_writes_pngs(tmp_path):
    run = FakeRun(tmp_path)
    write_field(run)
    inpaint_predictions(run)
    assert Path(explore(run, interactive=False).filename).stat().st_size > 1000
    image = explore(run, what="predictions", index=2, method="biharmonic", interactive=False)
    assert Path(image.filename).name == "predictions_drawn_2.png"
    with pytest.raises(GeonbError, match="out of range"):
        explore(run, what="predictions", index=3, interactive=False)
    with pytest.raises(GeonbError, match="choose one of unet, biharmonic"):
        explore(run, what="predictions", method="dincae", interactive=False)
    with pytest.raises(GeonbError, match="this run has: drawn"):
        explore(run, what="predictions", hole_set="square", interactive=False)


@pytest.mark.parametrize("task", ["inpaint", "downscale"])
def test_live_panels_are_linked_and_hover_shows_units(tmp_path, task):
    import holoviews as hv
    import panel as pn
    from bokeh.models import HoverTool, Plot

    run = FakeRun(tmp_path, task)
    (inpaint_predictions if task == "inpaint" else downscale_predictions)(run)
    view = explore(run, what="predictions", interactive=True)
    layout = view.select(pn.pane.HoloViews)[0].object  # Panel shows it, with the sample slider
    figures = list(hv.renderer("bokeh").get_plot(layout).state.select({"type": Plot}))
    assert len(figures) == 3
    assert figures[0].x_range is figures[1].x_range is figures[2].x_range, "panels must pan/zoom together"
    tooltips = [t.tooltips for t in figures[0].tools if isinstance(t, HoverTool)][0]
    units, x = ("°C", "lon") if task == "inpaint" else ("m", "x")  # degC written °C; downscale: a projected grid keeps x, y
    assert (x, "$x") in tooltips and any(f"({units})" in label for label, _ in tooltips)


def test_live_frontend_can_be_forced(monkeypatch):
    monkeypatch.setenv("GEONB_INTERACTIVE", "0")
    assert not live_frontend()
    monkeypatch.setenv("GEONB_INTERACTIVE", "1")
    assert live_frontend()
    monkeypatch.delenv("GEONB_INTERACTIVE")
    assert not live_frontend()  # plain python, no kernel: static


def test_every_live_view_carries_bokehjs_that_runs_at_once():
    """BokehJS lives in the browser page, not the kernel: each view sends it again (a reloaded
    tab has none), and runs it at once, before a widget in the same cell needs it.
    tests/test_browser.py checks the page side."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from geonb.interactive import _DEFERRED_LOAD, _IMMEDIATE_LOAD, bokehjs_with_this_output

    had_shell = InteractiveShell.initialized()
    InteractiveShell.instance()
    try:
        sent = []
        for _ in range(2):  # the second view in the same kernel too
            with capture_output(stdout=False, stderr=False) as view:
                bokehjs_with_this_output()
            sent.append([o.data["application/vnd.holoviews_load.v0+json"] for o in view.outputs
                         if "application/vnd.holoviews_load.v0+json" in o.data])
    finally:
        if not had_shell:
            InteractiveShell.clear_instance()
    for loads in sent:
        bokehjs = [js for js in loads if "Bokeh" in js and "load_or_wait" in js]
        assert len(bokehjs) == 1 and len(bokehjs[0]) > 1_000_000, "BokehJS inline, once per view"
        assert bokehjs[0].endswith(_IMMEDIATE_LOAD) and _DEFERRED_LOAD not in bokehjs[0], (
            "Panel's loader changed: BokehJS must run at once, not after a delay (see geonb/interactive.py)")
        assert any("JupyterCommManager" in js for js in loads), "the comm manager goes with each view"
        # Nothing to fetch (no CDN) is also what lets Panel's loader run the inline JS synchronously.
        for name, empty in (("js_urls", "[]"), ("js_modules", "[]"), ("js_exports", "{}"), ("css_urls", "[]")):
            assert f"const {name} = {empty};" in bokehjs[0], f"Panel's loader would fetch {name}"


def test_one_colour_map_per_quantity_centred_differences_and_readable_units():
    from geonb.interactive import _Frames, colours, quantity, robust_limits, unit_text

    assert unit_text("degC") == "°C" and unit_text("m") == "m"
    assert quantity("SST", "degC") == "sst" and quantity("thickness", "m") == "thickness" and quantity("u", "") == ""
    assert colours("sst", 0, 30) != colours("diff", -1, 1)  # cmocean thermal for SST, balance for differences
    lo, hi = robust_limits(np.r_[np.arange(100.0), 1e6, np.nan])
    assert lo < 2 and 97 < hi < 100  # one wild cell does not wash out the map
    truth = np.arange(16.0).reshape(1, 4, 4)
    ds = xr.Dataset({"truth": (("sample", "y", "x"), truth, {"units": "degC"}),
                     "unet": (("sample", "y", "x"), truth + np.r_[0.5, -2.0, 0, 0][None, None])})
    lo, hi = _Frames(ds, "unet").limits("difference")
    assert lo == -hi == -2.0  # centred on 0: white means no error


def test_the_live_field_view_renders_with_its_colours_and_grey_land():
    import bokeh.models
    import holoviews as hv
    import panel as pn

    from geonb.interactive import LAND, _field_view, colours

    hv.extension("bokeh")
    field = xr.DataArray(np.random.default_rng(0).random((2, 10, 20)) * 30, dims=("time", "lat", "lon"), name="field",
                         coords={"time": [0, 1], "lat": np.linspace(-80, 80, 10), "lon": np.linspace(-170, 170, 20)},
                         attrs={"units": "degC"})
    root = pn.panel(_field_view(field)).get_root()
    images = [r.glyph for plot in root.select({"type": bokeh.models.Plot}) for r in plot.renderers
              if isinstance(getattr(r, "glyph", None), bokeh.models.Image)]
    assert len(images) == 1
    mapper = images[0].color_mapper
    assert mapper.nan_color == LAND and list(mapper.palette) == colours("sst", 0, 30)
