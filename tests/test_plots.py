"""Static maps: land, gaps and values told apart; units as a reader writes them; lat/lon ticks."""
from __future__ import annotations

import numpy as np
from cartopy.mpl.gridliner import Gridliner
from matplotlib.colors import to_rgb
from PIL import Image

from geonb import plots


def _field():
    lat, lon = np.linspace(35.5, 37.0, 40), np.linspace(-5.0, -2.0, 80)
    values = 15 + np.add.outer(np.linspace(0, 1, 40), np.linspace(0, 2, 80))
    sea = np.ones(values.shape, bool)
    sea[:, :20] = False  # "land": never a value
    values[~sea] = np.nan
    values[10:30, 40:60] = np.nan  # a cloud over the sea
    return lat, lon, values, sea


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)


def _share(pixels, colour) -> float:
    rgb = np.round(np.array(to_rgb(colour)) * 255)
    return float((np.abs(pixels - rgb).sum(1) <= 6).mean())


def test_land_is_grey_gaps_are_hatched_and_units_read_as_degrees(tmp_path):
    lat, lon, values, sea = _field()
    with_domain = plots.map_panels([("day", values, lat, lon, "sst")], tmp_path / "a.png", units="degree_Celsius",
                                   domain=sea, gap="cloud")
    without = plots.map_panels([("day", values, lat, lon, "sst")], tmp_path / "b.png", units="degC")
    grey_a, grey_b = _share(_pixels(with_domain), plots.LAND), _share(_pixels(without), plots.LAND)
    # with the sea mask the cloud is not grey (hatched on white): less grey than when every empty cell is
    assert 0.02 < grey_a < grey_b
    # the cloud square covers 5/48 of the map, land 1/4: the grey share grows by about the cloud's share
    assert (grey_b - grey_a) > 0.3 * (grey_b * (5 / 48) / (1 / 4 + 5 / 48))


def test_map_panel_labels_say_degrees_celsius_and_carry_lat_lon_ticks(tmp_path, monkeypatch):
    lat, lon, values, sea = _field()
    seen = {}
    save = plots.save_figure

    def keep(fig, path):
        seen["labels"] = [a.get_ylabel() for a in fig.axes]
        fig.canvas.draw()  # the graticule's labels are made when the figure is drawn
        seen["texts"] = [t.get_text() for a in fig.axes for g in a.artists if isinstance(g, Gridliner)
                         for t in g.label_artists]
        seen["legend"] = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.map_panels([("day", values, lat, lon, "sst"), ("error", values - 16, lat, lon, "diff", sea)],
                     tmp_path / "c.png", units="degree Celsius", domain=sea, gap="cloud")
    assert "°C" in seen["labels"] and not any("Celsius" in label for label in seen["labels"])
    assert any("°N" in t for t in seen["texts"]) and any("°W" in t for t in seen["texts"])
    assert seen["legend"] == ["land", "cloud"]


def test_count_rows_print_as_integers_beside_scores_with_their_digits():
    import pandas as pd

    from geonb.report import Report

    table = pd.DataFrame({"clouds": [0.28886, 0.18], "all": [0.235, float("nan")]}, index=["dincae", "biharmonic"])
    table.loc["n points"] = [12122, 29710]  # a count row in float columns: pandas makes it 12122.0
    text = Report("t", tables={"RMSE": table}).table_text(3)
    assert "12122" in text and "12122.0" not in text and "0.180" in text and "NaN" in text
    assert Report("t", tables={"RMSE": table}).numbers()["RMSE | n points | clouds"] == 12122.0  # data unchanged


def test_loss_curves_keep_negative_losses_on_a_linear_axis(tmp_path, monkeypatch):
    """A Gaussian NLL goes below zero: on a log axis those epochs would vanish from the figure."""
    seen = {}
    save = plots.save_figure

    def keep(fig, path):
        seen["scales"] = [a.get_yscale() for a in fig.axes]
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    history = [{"epoch": e, "loss": 0.5 - 0.1 * e, "val_loss": 0.4 - 0.1 * e} for e in range(1, 9)]
    plots.loss_curves(history, tmp_path / "nll.png")
    assert seen["scales"] == ["linear"]
    plots.loss_curves([{**h, "loss": 1 / h["epoch"], "val_loss": 2 / h["epoch"]} for h in history], tmp_path / "mse.png")
    assert seen["scales"] == ["log"]
