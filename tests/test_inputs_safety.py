"""Issue 24, part B: inputs that were answered wrong in silence, with a traceback or a misleading line.

Each test is a row of docs/ERRORS.md ("Inputs read right or refused"): a clean one-line refusal or a correct
result, and the input files unchanged (sha256). Tiny synthetic grids and images: seconds each.
"""
from __future__ import annotations

import contextlib
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image

from geonb import aerial
from geonb.data import load_field, load_grid
from geonb.errors import GeonbError
from geonb.filling import fill, fill_file
from geonb.io import write_output
from geonb.modelfile import TrainedModel

from .test_errors import cube_file, digest, dincae_model, files, grid_file, one_error, run_cli, srcnn_model  # noqa: F401
from .test_segment import _model as segment_model


def tree(path: Path) -> list:
    """(name, sha256) of a file, or of every file in a folder (a zarr store)."""
    found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [(str(p.relative_to(path)) if path.is_dir() else p.name, digest(p)) for p in found]


@contextlib.contextmanager
def unchanged(*paths):
    before = [tree(Path(p)) for p in paths]
    yield
    assert [tree(Path(p)) for p in paths] == before


def refused(capsys, inputs, *argv) -> str:
    """The one error line of ``geonb argv`` (exit 2), its inputs unchanged."""
    with unchanged(*inputs):
        status, err = run_cli(capsys, *argv)
    line = one_error(err)
    assert status == 2, line
    return line


def predict(capsys, model, src, out, *extra) -> tuple[int, str]:
    with unchanged(src):
        return run_cli(capsys, "predict", "--model", model, "--input", src, "--out", out, *extra)


def lonlat_grid(path, lon, columns=None, ny=16):
    """A geographic grid (lat, lon) of real relief with the longitudes ``lon`` (``columns``: its cells' order)."""
    relief = load_grid("jacksboro")["elevation"].values[:ny, :len(lon)]
    relief = relief if columns is None else relief[:, columns]
    xr.Dataset({"elevation": (("lat", "lon"), relief)},
               coords={"lat": ("lat", 30 + 0.25 * np.arange(ny), {"units": "degrees_north"}),
                       "lon": ("lon", lon, {"units": "degrees_east"})}).to_netcdf(path)
    return path


# ---------------------------------------------------------------- longitudes across the seam
WEST = -3 + 0.25 * np.arange(24)  # −3 … 2.75: a region across 0°


@pytest.mark.parametrize("case", ["0…360 across 0°", "0…360 in two pieces", "−180…180 across 180°"])
def test_longitudes_across_the_seam_are_downscaled_as_one_grid_in_the_inputs_convention(files, tmp_path, capsys, case):
    reference = lonlat_grid(tmp_path / "ref.nc", WEST)
    assert predict(capsys, files["srcnn"], reference, tmp_path / "ref_out.nc")[0] == 0
    want = xr.open_dataset(tmp_path / "ref_out.nc")["elevation"]
    if case == "0…360 across 0°":  # 357 … 359.75, 0 … 2.75: sorting it cut the grid at 0°
        lon, columns, convention = WEST % 360, None, lambda v: v % 360
    elif case == "0…360 in two pieces":  # 0 … 2.75, 357 … 359.75: as a 0…360 file holds it
        order = np.argsort(WEST % 360)
        lon, columns, convention = (WEST % 360)[order], order, lambda v: v % 360
    else:  # 177 … 179.75, −180 … −177.25
        lon, columns, convention = (WEST + 180 + 180) % 360 - 180, None, lambda v: (v + 180 + 180) % 360 - 180
    src = lonlat_grid(tmp_path / "seam.nc", lon, columns)
    status, err = predict(capsys, files["srcnn"], src, tmp_path / "out.nc")
    assert status == 0, err
    got = xr.open_dataset(tmp_path / "out.nc")["elevation"]
    np.testing.assert_allclose(got.values, want.values, rtol=1e-6)  # the same field: no cut at the seam
    np.testing.assert_allclose(got.lon.values, convention(want.lon.values), atol=1e-9)


@pytest.mark.parametrize("lon", [np.arange(0.5, 360, 10.0), np.arange(-175, 180, 10.0)])
def test_a_global_grid_is_neither_rolled_nor_unwrapped(tmp_path, lon):
    src = lonlat_grid(tmp_path / "g.nc", lon)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "rolled" warning
        grid = load_grid(src)
    np.testing.assert_array_equal(grid.x.values, lon)
    assert "lon_seam" not in grid.attrs


@pytest.mark.parametrize("pieces", [False, True])
def test_a_cube_across_0_degrees_fills_as_the_same_cube_in_minus_180_to_180(files, tmp_path, pieces):
    shift = lambda ds: ds.assign_coords(lon=ds.lon + 18.8)  # noqa: E731  (−1.2 … 1.15: across 0°)
    reference = cube_file(tmp_path / "ref.nc", edit=shift)
    want = fill_file(reference, "SST", tmp_path / "ref_out.nc", mask_var="mask", model=files["dincae"])

    def seam(ds):
        ds = shift(ds).assign_coords(lon=(ds.lon + 18.8) % 360)
        return ds.sortby("lon") if pieces else ds

    src = cube_file(tmp_path / "seam.nc", edit=seam)
    with unchanged(src), (pytest.warns(UserWarning, match="rolled them into one run") if pieces
                          else contextlib.nullcontext()):
        fill_file(src, "SST", tmp_path / "out.nc", mask_var="mask", model=files["dincae"])
    got = xr.open_dataset(tmp_path / "out.nc")
    np.testing.assert_array_equal(got.lon.values, xr.open_dataset(src).lon.values)  # the input's own order
    order = np.argsort(want.lon.values % 360) if pieces else slice(None)  # the reference's columns in the input's order
    np.testing.assert_allclose(got.SST.values, want.SST.values[..., order], rtol=1e-5)


# ---------------------------------------------------------------- curvilinear and uneven grids
def curvilinear(ds, names=("lat", "lon"), as_coords=True):
    ds = ds.rename(lat="y", lon="x")
    lat2, lon2 = np.meshgrid(ds.y.values, ds.x.values, indexing="ij")
    layers = {names[0]: (("y", "x"), lat2 + 0.01 * lon2), names[1]: (("y", "x"), lon2 - 0.01 * lat2)}
    return ds.assign_coords(layers) if as_coords else ds.assign(layers)


@pytest.mark.parametrize("names,as_coords", [(("lat", "lon"), True), (("nav_lat", "nav_lon"), True),
                                             (("latitude", "longitude"), False)])
def test_curvilinear_grids_are_refused_not_treated_as_regular(files, tmp_path, capsys, names, as_coords):
    cube = cube_file(tmp_path / "curvi.nc", edit=lambda ds: curvilinear(ds, names, as_coords))
    line = refused(capsys, [cube], "fill", cube, "--var", "SST", "--model", files["dincae"], "--out", tmp_path / "o.nc")
    assert "2-D coordinates" in line and "curvilinear" in line and "regrid" in line
    grid = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.rename(y="lat", x="lon").pipe(curvilinear, names, as_coords))
    line = refused(capsys, [grid], "predict", "--model", files["srcnn"], "--input", grid, "--out", tmp_path / "p.nc")
    assert "curvilinear" in line and not (tmp_path / "p.nc").exists()


@pytest.mark.parametrize("axis", ["x", "y"])
def test_a_grid_with_a_gap_is_refused_for_downscaling(files, tmp_path, capsys, axis):
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.isel({axis: [*range(10), *range(16, 32)]}))  # 6 left out
    line = refused(capsys, [src], "predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc")
    assert f"{axis} jumps from steps of" in line and "a gap in the grid" in line
    line = refused(capsys, [src], "train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt")
    assert "a gap in the grid" in line and not (tmp_path / "m_checkpoints").exists()


def test_smoothly_uneven_latitudes_keep_their_positions_when_downscaled(files, tmp_path, capsys):
    steps = np.linspace(0.1, 0.3, 31)  # a Mercator-like axis: steps grow 3 times over the grid
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.rename(y="lat", x="lon").assign_coords(
        lat=np.r_[30, 30 + np.cumsum(steps)]))
    assert predict(capsys, files["srcnn"], src, tmp_path / "p.nc")[0] == 0
    coarse = xr.open_dataset(src).lat.values
    fine = xr.open_dataset(tmp_path / "p.nc").lat.values.reshape(-1, 2)
    edges = np.r_[-np.inf, (coarse[1:] + coarse[:-1]) / 2, np.inf]
    assert (np.diff(fine.ravel()) > 0).all()  # no overlap (the mean step put them 0.05° into the next cell)
    assert ((fine > edges[:-1, None]) & (fine < edges[1:, None])).all()  # each fine cell inside its coarse cell


# ---------------------------------------------------------------- missing zarr chunks
def chunks_of(store: Path, var: str) -> list[Path]:
    return sorted(p for p in (store / var).rglob("*") if p.is_file() and not p.name.startswith(("zarr", ".z")))


@pytest.mark.parametrize("var", ["SST", "lat"])
def test_a_zarr_store_with_a_missing_chunk_file_is_refused_before_a_fill(files, tmp_path, capsys, var):
    store = tmp_path / "c.zarr"
    xr.open_dataset(files["cube"]).chunk(time=1, lat=16).to_zarr(store)
    chunks_of(store, var)[-1].unlink()  # a chunk file lost in a copy: zarr reads it as NaN, i.e. cloud
    line = refused(capsys, [store], "fill", store, "--var", "SST", "--mask-var", "mask", "--model", files["dincae"],
                   "--out", tmp_path / "o.nc")
    assert f"chunk files of {var!r} are missing" in line and "copy the store again" in line
    assert not (tmp_path / "o.nc").exists()


def test_a_zarr_store_with_a_missing_chunk_file_is_refused_before_a_lazy_prediction(files, tmp_path, capsys):
    store = tmp_path / "g.zarr"
    xr.open_dataset(files["grid"]).chunk(8).to_zarr(store)
    chunks_of(store, "elevation")[5].unlink()
    line = refused(capsys, [store], "predict", "--model", files["srcnn"], "--input", store, "--out", tmp_path / "o.nc")
    assert "1 of 16 chunk files of 'elevation' are missing" in line


def test_geonb_writes_every_zarr_chunk_so_its_outputs_read_back(tmp_path):
    values = np.full((16, 16), np.nan, "float32")
    values[:8, :8] = 1.0  # three chunks all NaN (land): zarr leaves such chunks out unless told
    write_output(xr.Dataset({"v": (("y", "x"), values)}).chunk(8), tmp_path / "o.zarr")
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "o.zarr")["v"].values, values)
    assert len(chunks_of(tmp_path / "o.zarr", "v")) == 4


# ---------------------------------------------------------------- images: bit depth, range, lossy, size
def rgb_of(path, var=""):
    return aerial.read_photo(path, var)[0]


RAMP = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_images_are_scaled_not_clipped_to_white(tmp_path, suffix):
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray(RAMP).save(path)
    with unchanged(path):
        rgb = rgb_of(path)
    np.testing.assert_array_equal(rgb[..., 0], np.round(RAMP / 257).astype(np.uint8))
    assert (rgb == rgb[..., :1]).all() and rgb.mean() == pytest.approx(127.5, abs=1)


@pytest.mark.parametrize("count", [3, 7])
def test_16_bit_multiband_geotiffs_are_read_with_rasterio_or_refused_naming_the_bands(tmp_path, capsys, count):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    bands = np.stack([RAMP[:32, :40] // (k + 1) for k in range(count)])  # what PIL cannot identify
    src = tmp_path / "scene.tif"
    with rasterio.open(src, "w", driver="GTiff", height=32, width=40, count=count, dtype="uint16", crs="EPSG:32640",
                       transform=from_origin(500_000, 2_800_000, 10, 10)) as dst:
        dst.write(bands)
    model = segment_model("unet_seg").save(tmp_path / "seg.pt")
    if count == 7:
        line = refused(capsys, [src], "predict", "--model", model, "--input", src, "--out", tmp_path / "c.tif")
        assert "has 7 bands; a photo has 3 (RGB)" in line
        return
    with unchanged(src):
        rgb = rgb_of(src)
        assert run_cli(capsys, "predict", "--model", model, "--input", src, "--out", tmp_path / "c.tif")[0] == 0
    np.testing.assert_array_equal(rgb, np.round(np.moveaxis(bands, 0, -1) / 257).astype(np.uint8))
    with rasterio.open(tmp_path / "c.tif") as out:
        assert out.crs.to_epsg() == 32640 and out.shape == (32, 40)


@pytest.mark.parametrize("scale,expect", [(1.0, 255), (255.0, 1)])
def test_float_images_in_0_1_or_0_255_are_read_at_their_range(tmp_path, scale, expect):
    ramp = (np.linspace(0, 1, 64 * 64).reshape(64, 64) * scale).astype(np.float32)
    Image.fromarray(ramp).save(tmp_path / "f.tif")
    rgb = rgb_of(tmp_path / "f.tif")
    np.testing.assert_array_equal(rgb[..., 1], np.round(ramp.astype("float64") * expect).astype(np.uint8))


@pytest.mark.parametrize("dtype,values", [("uint16", RAMP), ("float32", RAMP / 65535), ("int16", RAMP // 4 - 100)])
def test_gridded_photos_are_read_by_their_type_or_refused(tmp_path, dtype, values):
    bands = np.stack([values] * 3, -1).astype(dtype)
    src = tmp_path / "photo.nc"
    xr.Dataset({"rgb": (("y", "x", "band"), bands)}).to_netcdf(src)
    with unchanged(src):
        if dtype == "int16":  # negative grey levels: no range to read them in
            with pytest.raises(GeonbError, match=r"int16 values -100 … 16280; .*rescale it"):
                rgb_of(src)
            return
        rgb = rgb_of(src)
    np.testing.assert_array_equal(rgb[..., 2], np.round(RAMP / 257).astype(np.uint8))


def test_float_images_beyond_0_255_are_refused(tmp_path):
    Image.fromarray(np.linspace(-5, 300, 64 * 64, dtype=np.float32).reshape(64, 64)).save(tmp_path / "f.tif")
    with pytest.raises(GeonbError, match=r"float32 values -5 … 300; geonb reads images as 0–255"):
        rgb_of(tmp_path / "f.tif")


@pytest.mark.parametrize("mode", ["P", "LA"])
def test_palette_and_alpha_images_keep_their_colours_and_transparency(tmp_path, mode):
    grey = (RAMP // 257).astype(np.uint8)
    if mode == "P":
        im = Image.fromarray(grey).convert("P")
        im.info["transparency"] = int(grey[0, 0])
    else:
        im = Image.fromarray(np.stack([grey, np.where(grey < 40, 0, 255).astype(np.uint8)], -1), "LA")
    im.save(tmp_path / "i.png")
    rgb, _, valid = aerial.read_photo(tmp_path / "i.png")
    np.testing.assert_array_equal(rgb[..., 0], grey)
    assert not valid[0, 0] and valid[-1, -1]


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_class_maps_are_never_written_lossy(tmp_path, capsys, suffix):
    model = segment_model("unet_seg").save(tmp_path / "seg.pt")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3)).astype(np.uint8)).save(tmp_path / "i.png")
    line = refused(capsys, [tmp_path / "i.png", model], "predict", "--model", model, "--input", tmp_path / "i.png",
                   "--out", tmp_path / f"classes{suffix}")
    assert "a class map in" in line and "lossy" in line and "use PNG" in line
    assert not (tmp_path / f"classes{suffix}").exists()


@pytest.mark.parametrize("name", ["labels.jpg", "labels.png"])  # the second: JPEG bytes under a .png name
def test_lossy_label_masks_are_refused(tmp_path, name):
    ids = np.repeat(np.arange(5, dtype=np.uint8), 20).reshape(10, 10)
    Image.fromarray(ids).save(tmp_path / name, format="JPEG")
    with pytest.raises(GeonbError, match="label masks in JPEG, a lossy format"):
        aerial.read_labels(tmp_path / name)


def png_declaring(w: int, h: int) -> bytes:
    """A PNG header declaring w×h RGB pixels, with no pixel data: what a decompression bomb looks like unread."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def bmp_declaring(w: int, h: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("make,w,h", [(png_declaring, 100_000, 100_000), (png_declaring, 20_000, 15_000),
                                      (bmp_declaring, 30_000, 30_000)])
def test_decompression_bombs_are_refused_with_their_size(tmp_path, capsys, make, w, h):
    src = tmp_path / "bomb.png"
    src.write_bytes(make(w, h))
    model = segment_model("unet_seg").save(tmp_path / "seg.pt")
    line = refused(capsys, [src], "predict", "--model", model, "--input", src, "--out", tmp_path / "c.png")
    assert f"declares {w}×{h} px" in line and "decompression bomb" in line


# ---------------------------------------------------------------- too small
@pytest.mark.parametrize("ny,nx", [(3, 3), (5, 6)])
def test_grids_too_small_for_the_model_are_refused_with_the_minimum(files, tmp_path, capsys, ny, nx):
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.isel(y=slice(0, ny), x=slice(0, nx)))
    line = refused(capsys, [src], "predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc")
    assert f"is {ny}×{nx} cells; this model needs at least 6×6" in line
    line = refused(capsys, [src], "train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt",
                   "--patch-lr", 4, "--factor", 2)
    assert f"the grid is {ny}×{nx} cells" in line and "needs at least 16×32" in line


def test_the_smallest_grid_a_model_takes_is_predicted(files, tmp_path, capsys):
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.isel(y=slice(0, 6), x=slice(0, 7)))
    assert predict(capsys, files["srcnn"], src, tmp_path / "p.nc")[0] == 0
    assert xr.open_dataset(tmp_path / "p.nc")["elevation"].shape == (12, 14)


def test_a_grid_wider_than_tall_still_needs_a_training_tile_beside_the_validation_band(files, tmp_path, capsys):
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.isel(x=slice(0, 20)))
    line = refused(capsys, [src], "train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt",
                   "--patch-lr", 4, "--factor", 2)
    assert "32×20 cells, 32×16 in whole 16-cell blocks; downscaling needs at least 16×32" in line


def test_a_cube_too_small_for_dineof_is_refused(tmp_path, capsys):
    src = cube_file(tmp_path / "c.nc", ny=3, nx=3)
    line = refused(capsys, [src], "fill", src, "--var", "SST", "--arch", "dineof", "--out", tmp_path / "o.nc")
    assert "too few for DINEOF" in line


# ---------------------------------------------------------------- time named otherwise
@pytest.mark.parametrize("name,attrs", [("t", {}), ("date", {}), ("step", {"axis": "T"})])
def test_a_time_dimension_named_otherwise_is_time(files, tmp_path, name, attrs):
    want = fill_file(files["cube"], "SST", tmp_path / "a.nc", mask_var="mask", model=files["dincae"])
    src = cube_file(tmp_path / "t.nc", edit=lambda ds: ds.rename(time=name).pipe(
        lambda d: d.assign_coords({name: d[name].assign_attrs(attrs)})))
    with unchanged(src):
        got = fill_file(src, "SST", tmp_path / "b.nc", mask_var="mask", model=files["dincae"])
    assert got.SST.dims == (name, "lat", "lon")
    np.testing.assert_allclose(got.SST.values, want.SST.values, rtol=1e-6)  # every day filled, none dropped


def test_a_grid_with_a_second_stepped_axis_names_its_own_dimension(files, tmp_path, capsys):
    """`t` is time (a series, predicted step by step); the ensemble axis beside it is what must be selected."""
    src = grid_file(tmp_path / "g.nc", n_time=3, edit=lambda ds: xr.concat([ds, ds + 1], "member").rename(time="t"))
    line = refused(capsys, [src], "predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc")
    assert "3 steps along 't'" in line and "ds.isel(member=0)" in line and "isel(t=0)" not in line


# ---------------------------------------------------------------- beyond float32
def test_values_beyond_float32_are_refused_not_called_missing(files, tmp_path, capsys):
    def poison(ds):
        ds["SST"] = ds["SST"].astype("float64")
        ds["SST"][1, 20, 30] = 1e39
        return ds

    src = cube_file(tmp_path / "c.nc", edit=poison)
    for extra in ([], ["--allow-outliers"]):
        line = refused(capsys, [src], "fill", src, "--var", "SST", "--model", files["dincae"], "--out",
                       tmp_path / "o.nc", *extra)
        assert "1 value(s) beyond float32's range" in line and "rescale the variable" in line


@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_grid_all_beyond_float32_is_refused_eagerly_and_lazily(files, tmp_path, capsys, command):
    src = grid_file(tmp_path / "g.nc", edit=lambda ds: ds.astype("float64") * 1e37)  # eager (train), lazy (predict)
    argv = ["train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt"] if command == "train" else \
        ["predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc"]
    line = refused(capsys, [src], *argv)
    assert "beyond float32's range" in line and "all NaN" not in line


def test_a_dataarray_beyond_float32_is_refused(tmp_path):
    da = xr.DataArray(np.full((2, 4, 4), 1e40), dims=("time", "lat", "lon"), name="v")
    with pytest.raises(GeonbError, match=r"32 value\(s\) beyond float32's range"):
        load_field(da)


# ---------------------------------------------------------------- paths and file kinds
@pytest.mark.parametrize("given", ["mine.nc", "sub/missing.nc", "jacksboro"])
def test_relative_paths_given_to_geonb_run_are_the_users(tmp_path, monkeypatch, given):
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, target, parameters, **_: seen.update(parameters))
    monkeypatch.chdir(tmp_path)
    grid_file(tmp_path / "mine.nc")
    from geonb.cli import run_notebooks
    run_notebooks(tmp_path / "run", params={"arch": "srcnn", "data": given}, notebooks=("01_data_prep",))
    assert seen["data"] == (given if given == "jacksboro" else str(tmp_path / given))


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".nc"), ("TIFF", ".tif")])
def test_an_image_given_where_a_grid_belongs_is_named(files, tmp_path, capsys, fmt, suffix):
    src = tmp_path / f"photo{suffix}"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src, format=fmt)
    for argv in (["predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc"],
                 ["fill", src, "--var", "SST", "--model", files["dincae"], "--out", tmp_path / "o.nc"],
                 ["train", "--arch", "srcnn", "--data", src, "--model", tmp_path / "m.pt"]):
        line = refused(capsys, [src], *argv)
        assert f"is a {fmt} image" in line and "not a" in line and "corrupt" not in line  # TIFF: "with 3 bands, not a grid"


# ---------------------------------------------------------------- masks
@pytest.mark.parametrize("land", [0.0, np.nan, -1.0])
def test_a_mask_with_no_sea_is_refused_not_answered_with_nothing_to_fill(files, tmp_path, capsys, land):
    src = cube_file(tmp_path / "c.nc", edit=lambda ds: ds.assign(mask=ds["mask"].astype("float32") * 0 + land))
    line = refused(capsys, [src], "fill", src, "--var", "SST", "--mask-var", "mask", "--model", files["dincae"],
                   "--out", tmp_path / "o.nc")
    assert "the mask marks no cell as sea" in line and not (tmp_path / "o.nc").exists()
    cube = xr.open_dataset(src)
    with pytest.raises(GeonbError, match="marks no cell as sea"):
        fill(cube["SST"], mask=np.zeros(cube["mask"].shape), model=files["dincae"])


# ---------------------------------------------------------------- values and coordinates that are not numbers
def test_a_grid_of_strings_is_refused_as_not_numbers(files, tmp_path, capsys):
    src = grid_file(tmp_path / "str.nc", edit=lambda ds: ds.assign(elevation=ds.elevation.astype(str)))
    line = refused(capsys, [src], "predict", "--model", files["srcnn"], "--input", src, "--out", tmp_path / "p.nc")
    assert "variable 'elevation' holds <U" in line and "not numbers" in line
    with pytest.raises(GeonbError, match="holds bool values, not numbers"):
        load_field(xr.DataArray(np.ones((2, 8, 8), bool), dims=("time", "lat", "lon"), name="flag"))


def test_a_time_axis_of_strings_is_refused_and_cftime_calendars_are_kept(files, tmp_path, capsys):
    import cftime

    src = cube_file(tmp_path / "strtime.nc", edit=lambda ds: ds.assign_coords(
        time=[f"2020-05-{d + 1:02d}" for d in range(ds.sizes["time"])]))
    line = refused(capsys, [src], "fill", src, "--var", "SST", "--mask-var", "mask", "--model", files["dincae"],
                   "--out", tmp_path / "o.nc")
    assert "coordinate 'time' holds" in line and "not numbers or dates" in line
    noleap = [cftime.DatetimeNoLeap(2020, m, d) for m, d in ((2, 27), (2, 28), (3, 1), (3, 2))]
    field = load_field(xr.DataArray(np.random.default_rng(0).random((4, 8, 8)), dims=("time", "lat", "lon"),
                                    coords={"time": noleap, "lat": np.arange(8.0), "lon": np.arange(8.0)}, name="tas"))
    assert list(field.time.values) == noleap  # a model calendar (no 29 February) is a calendar, not text


def test_filling_the_mask_as_the_field_is_refused(files, tmp_path, capsys):
    line = refused(capsys, [files["cube"]], "fill", files["cube"], "--var", "mask", "--mask-var", "mask",
                   "--model", files["dincae"], "--out", tmp_path / "o.nc")
    assert "--var and --mask-var both name 'mask'" in line


# ---------------------------------------------------------------- found by benchmarks/attack.py
def _resaved(source, path, **changes):
    saved = torch.load(source, weights_only=True)
    for part, value in changes.items():
        saved[part] = {**saved[part], **value} if isinstance(saved[part], dict) and isinstance(value, dict) else value
    torch.save(saved, path)
    return path


@pytest.mark.parametrize("changes,message", [
    ({"inputs": {"classes": ["land", "water"]}}, "inputs['classes'] names 2 classes, its network predicts 5"),
    ({"task": "downscale"}, "it calls a segnet network (a segment arch) a downscale model"),
])
def test_model_files_whose_parts_disagree_are_refused(tmp_path, capsys, changes, message):
    path = _resaved(segment_model("segnet").save(tmp_path / "good.pt"), tmp_path / "m.pt", **changes)
    status, err = run_cli(capsys, "predict", "--model", path, "--input", tmp_path / "x.png", "--out", tmp_path / "o.nc")
    assert status == 2 and message in one_error(err) and not (tmp_path / "o.nc").exists()


@pytest.mark.parametrize("window", [4, 5])
def test_a_cloud_model_whose_window_does_not_fit_its_network_is_refused(files, tmp_path, capsys, window):
    path = _resaved(files["dincae"], tmp_path / "m.pt", inputs={"window": window})
    with unchanged(files["cube"]):
        status, err = run_cli(capsys, "fill", files["cube"], "--var", "SST", "--mask-var", "mask", "--model", path,
                              "--out", tmp_path / "o.nc")
    assert status == 2 and f"inputs['window'] = {window} days does not fit" in one_error(err)


def test_sparse_weights_are_refused(files, tmp_path):
    saved = torch.load(files["srcnn"], weights_only=True)
    first = next(iter(saved["weights"][0]))
    saved["weights"][0][first] = saved["weights"][0][first].to_sparse()
    torch.save(saved, tmp_path / "m.pt")
    with pytest.raises(GeonbError, match="state dicts of dense tensors"):
        TrainedModel.load(tmp_path / "m.pt")


@pytest.mark.parametrize("tile", [0, -3, 10 ** 6])
def test_the_api_checks_tile_as_the_command_line_does(files, tile):
    grid = load_grid(files["grid"])["elevation"]
    with pytest.raises(GeonbError, match="parameter 'tile'"):
        grid.geonb.downscale(files["srcnn"], tile=tile)


def test_latitudes_beyond_90_are_refused(files, tmp_path, capsys):
    bad = cube_file(tmp_path / "bad.nc", edit=lambda ds: ds.assign_coords(lat=ds.lat + 70))
    with unchanged(bad):
        status, err = run_cli(capsys, "fill", bad, "--var", "SST", "--mask-var", "mask", "--model", files["dincae"],
                              "--out", tmp_path / "o.nc")
    assert status == 2 and "beyond ±90°" in one_error(err)


@pytest.mark.parametrize("where", ["name", "folder"])
def test_an_output_name_too_long_is_one_line(files, tmp_path, capsys, where):
    out = tmp_path / ("a" * 300 + ".nc") if where == "name" else tmp_path / ("d" * 300) / "o.nc"
    status, err = run_cli(capsys, *["fill", files["cube"], "--var", "SST", "--mask-var", "mask", "--model",
                                    files["dincae"], "--out", out])
    assert status == 2 and "more than the 255 a file name may have" in one_error(err)


def test_an_empty_image_file_is_called_empty(tmp_path, capsys):
    model = segment_model("segnet").save(tmp_path / "m.pt")
    (tmp_path / "photo.png").write_bytes(b"")
    status, err = run_cli(capsys, "predict", "--model", model, "--input", tmp_path / "photo.png", "--out", tmp_path / "o.nc")
    assert status == 2 and "is empty (0 bytes)" in one_error(err)


def test_a_coordinate_given_as_the_variable_is_called_a_coordinate(files, tmp_path, capsys):
    status, err = run_cli(capsys, "fill", files["cube"], "--var", "lat", "--mask-var", "mask", "--model", files["dincae"],
                          "--out", tmp_path / "o.nc")
    assert status == 2 and "'lat' in" in one_error(err) and "is a coordinate, not a data variable" in one_error(err)
