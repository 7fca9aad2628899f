"""Headless tests of mask drawing: rasterisation on lat/lon grids, the widget's operations
driven through its streams, and the saved file's contract with the inpaint task."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from geonb.draw import BACKUP_FILE, MASK_FILE, MaskDrawer, save_mask
from geonb.errors import GeonbError
from geonb.rasterise import rasterise, rasterise_box, rasterise_polygon

# A 1° grid whose latitude decreases, like HadISST: 89.5 → -89.5.
LAT_DOWN = np.arange(89.5, -90, -1.0)
LON = np.arange(-179.5, 180, 1.0)
# Polygon with vertices on cell edges (integer degrees): the cells inside are exact.
SQUARE = ([10, 20, 20, 10], [0, 0, 5, 5])


def field(lat=LAT_DOWN, lon=LON) -> xr.DataArray:
    values = np.add.outer(lat, np.cos(np.radians(lon))).astype("float32")
    values[:10] = np.nan  # land/missing must not matter to the mask
    return xr.DataArray(values[None], dims=("time", "lat", "lon"),
                        coords={"time": [0], "lat": lat, "lon": lon}, name="field", attrs={"units": "degC"})


def cells(mask, lat, lon) -> set[tuple[float, float]]:
    return {(float(lat[i]), float(lon[j])) for i, j in np.argwhere(mask)}


def expected_square() -> set[tuple[float, float]]:
    return {(la, lo) for la in np.arange(0.5, 5, 1.0) for lo in np.arange(10.5, 20, 1.0)}


@pytest.mark.parametrize("lat", [LAT_DOWN, LAT_DOWN[::-1]], ids=["lat-decreasing", "lat-increasing"])
@pytest.mark.parametrize("lon", [LON, LON[::-1], np.sort(LON % 360)], ids=["lon-180", "lon-decreasing", "lon-0-360"])
def test_polygon_gives_the_cells_inside_on_any_grid_order(lat, lon):
    mask = rasterise_polygon(*SQUARE, lat, lon)
    assert mask.shape == (lat.size, lon.size)
    assert cells(mask, lat, lon) == {(la, lo % 360 if lon.max() > 180 else lo) for la, lo in expected_square()}


def test_triangle_keeps_cells_whose_centre_is_inside():
    lat, lon = np.arange(0.5, 10), np.arange(0.5, 10)
    # Legs 10.2 long: no cell centre lies on the hypotenuse lat + lon = 10.2.
    mask = rasterise_polygon([0, 10.2, 0], [0, 0, 10.2], lat, lon)
    assert cells(mask, lat, lon) == {(la, lo) for la in lat for lo in lon if la + lo < 10.2}


def test_box_includes_edges_and_wraps_the_dateline():
    box = rasterise_box(170, -10, 190, -5, LAT_DOWN, LON)  # 170°E to 170°W
    got = cells(box, LAT_DOWN, LON)
    assert len(got) == 20 * 5
    assert (-9.5, 179.5) in got and (-9.5, -170.5) in got and (-9.5, -169.5) not in got


def test_freehand_stroke_paints_a_band_of_the_brush_width():
    mask = rasterise("freehand", {"xs": [[0, 20]], "ys": [[0.5, 0.5]]}, LAT_DOWN, LON, brush="stroke", width=3)
    rows = sorted({la for la, _ in cells(mask, LAT_DOWN, LON)})
    assert rows == [-0.5, 0.5, 1.5]


def test_stream_events_give_the_same_mask_as_direct_rasterisation(tmp_path):
    drawer = MaskDrawer(field(), tmp_path / MASK_FILE)
    drawer.freehand.event(data={"xs": [SQUARE[0]], "ys": [SQUARE[1]]})
    drawer.polygon.event(data={"xs": [[-50, -40, -45]], "ys": [[-20, -20, -10]]})
    drawer.box.event(data={"x0": [100], "y0": [30], "x1": [110], "y1": [35]})
    expected = (rasterise_polygon(*SQUARE, LAT_DOWN, LON)
                | rasterise_polygon([-50, -40, -45], [-20, -20, -10], LAT_DOWN, LON)
                | rasterise_box(100, 30, 110, 35, LAT_DOWN, LON))
    assert drawer.add() == expected.sum()
    np.testing.assert_array_equal(drawer.mask, expected)
    assert drawer.freehand.data == {"xs": [], "ys": []}, "added shapes must leave the drawing layer"


def test_erase_and_clear(tmp_path):
    drawer = MaskDrawer(field(), tmp_path / MASK_FILE)
    drawer.box.event(data={"x0": [0], "y0": [0], "x1": [30], "y1": [10]})
    drawer.add()
    drawer.freehand.event(data={"xs": [SQUARE[0]], "ys": [SQUARE[1]]})
    drawer.erase()
    np.testing.assert_array_equal(drawer.mask, rasterise_box(0, 0, 30, 10, LAT_DOWN, LON)
                                  & ~rasterise_polygon(*SQUARE, LAT_DOWN, LON))
    drawer.clear()
    assert not drawer.mask.any() and drawer.history == []


def test_saved_file_has_the_field_grid_and_keeps_the_previous_mask(tmp_path):
    path = tmp_path / MASK_FILE
    drawer = MaskDrawer(field(), path)
    with pytest.raises(GeonbError, match="empty"):
        drawer.save()
    drawer.freehand.event(data={"xs": [SQUARE[0]], "ys": [SQUARE[1]]})
    drawer.save()  # shapes still drawn are added by save
    saved = xr.open_dataarray(path)
    assert saved.name == "mask" and saved.dims == ("lat", "lon") and saved.dtype == np.uint8
    np.testing.assert_array_equal(saved.lat, LAT_DOWN)
    np.testing.assert_array_equal(saved.lon, LON)
    assert cells(saved.values, LAT_DOWN, LON) == expected_square()
    assert json.loads(saved.attrs["shapes"])[0]["op"] == "add"

    reopened = MaskDrawer(field(), path)  # carries on from the saved mask
    np.testing.assert_array_equal(reopened.mask, saved.values.astype(bool))
    reopened.box.event(data={"x0": [100], "y0": [30], "x1": [110], "y1": [35]})
    reopened.save()
    assert cells(xr.open_dataarray(tmp_path / BACKUP_FILE).values, LAT_DOWN, LON) == expected_square()
    assert xr.open_dataarray(path).values.sum() == len(expected_square()) + 10 * 5


def test_never_overwrites_a_file_it_did_not_write(tmp_path):
    theirs = tmp_path / MASK_FILE
    xr.DataArray(np.ones((2, 2)), dims=("lat", "lon"), name="mask").to_netcdf(theirs)
    before = theirs.read_bytes()
    with pytest.raises(GeonbError, match="not written by geonb.draw"):
        save_mask(np.ones((LAT_DOWN.size, LON.size), bool), field().isel(time=0), theirs)
    assert theirs.read_bytes() == before


def test_bad_inputs_name_the_fix(tmp_path):
    with pytest.raises(GeonbError, match="lat and lon"):
        MaskDrawer(xr.DataArray(np.zeros((3, 3)), dims=("y", "x")), tmp_path / MASK_FILE)
    with pytest.raises(GeonbError, match="monotonic"):
        rasterise_polygon(*SQUARE, np.array([0.5, 2.5, 1.5]), LON)
    with pytest.raises(GeonbError, match="unknown drawing tool"):
        rasterise("lasso", {}, LAT_DOWN, LON)
    with pytest.raises(GeonbError, match="one y per x"):
        rasterise_polygon([0, 1, 2], [0, 1], LAT_DOWN, LON)


def test_tasks_that_read_no_drawn_holes_get_a_note_not_a_widget(tmp_path):
    from geonb import Run, draw_mask

    note = draw_mask(Run(tmp_path, arch="srcnn", quick=True, data="antarctica"))  # projected: no lat/lon to draw on
    assert "downscale task (srcnn) takes no drawn holes" in note.data and not list(tmp_path.rglob("*.nc"))
