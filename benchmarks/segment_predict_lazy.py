"""`geonb predict` on a large RGB zarr mosaic: wall time and peak memory against the image size.

``build`` writes a ``size``×``size`` mosaic of the real Dubai photos (``segment_mosaic.build``) as the
variable ``rgb`` (y, x, band) of a zarr store, the layout ``geonb predict`` reads. ``run`` predicts it
with the shipped ``unet_seg_dubai`` (or ``--model``) through the command line, each output in its own
process under ``/usr/bin/time -v``: the class map to zarr, with ``--probabilities`` to zarr, and with
``--probabilities`` to a GeoTIFF (the mosaic has no CRS, so ``run`` writes it as a georeferenced
GeoTIFF input first, read lazily as well), and as the baseline the same mosaic as a PNG (decoded and
predicted whole, in tiles). Prints and saves (``--json``) wall seconds and peak RSS.

    python benchmarks/segment_predict_lazy.py build /tmp/m2k.zarr --size 2048
    OMP_NUM_THREADS=1 python benchmarks/segment_predict_lazy.py run /tmp/m2k.zarr --json results/x.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xarray as xr
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from segment_mosaic import build as build_raw  # noqa: E402


def build(out: Path, size: int, chunk: int) -> None:
    import dask.array as dsa

    with tempfile.TemporaryDirectory() as tmp:
        build_raw(Path(tmp) / "raw.zarr", size, chunk)
        rgb = dsa.from_zarr(str(Path(tmp) / "raw.zarr"))
        xr.Dataset({"rgb": (("y", "x", "band"), rgb)}).to_zarr(out, mode="w")


def geotiff(mosaic: Path, out: Path) -> None:
    """The mosaic as a tiled GeoTIFF with a CRS (UTM 40N, 0.5 m pixels), written window by window."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rgb = xr.open_zarr(mosaic)["rgb"]
    h, w, _ = rgb.shape
    with rasterio.open(out, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8", crs="EPSG:32640",
                       transform=from_origin(300000, 2800000, 0.5, 0.5), tiled=True, compress="DEFLATE") as dst:
        for r in range(0, h, 1024):
            rows = rgb[r:r + 1024].values
            dst.write(rows.transpose(2, 0, 1), window=Window(0, r, w, len(rows)))


def timed(argv: list[str]) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "geonb", *argv], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(rss / 1024)}


def run(mosaic: Path, model: str, chunk: int, out_json: Path | None) -> None:
    h, w, _ = xr.open_zarr(mosaic)["rgb"].shape
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tif, png = Path(tmp) / "mosaic.tif", Path(tmp) / "mosaic.png"
        geotiff(mosaic, tif)
        Image.fromarray(xr.open_zarr(mosaic)["rgb"].values).save(png)  # the baseline: decoded and predicted whole
        for image, out, flags in ((mosaic, "classes.zarr", []), (mosaic, "probs.zarr", ["--probabilities"]),
                                  (tif, "classes.tif", []), (tif, "probs.tif", ["--probabilities"]),
                                  (png, "classes.png", [])):
            flags += ["--chunk", str(chunk)] if image != png else []
            row = {"input": Path(image).suffix, "out": out, "flags": " ".join(flags), "px": h * w,
                   **timed(["predict", "--model", model, "--input", str(image), "--out", str(Path(tmp) / out), *flags])}
            rows.append(row)
            print(row, flush=True)
    record = {"size": f"{h}x{w}", "model": model, "load_before": os.getloadavg(), "runs": rows,
              "raw_mosaic_mb": round(h * w * 3 / 2 ** 20), "probability_bands_mb": round(h * w * 6 * 4 / 2 ** 20)}
    if out_json:
        out_json.write_text(json.dumps(record, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k != "runs"}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "run"))
    parser.add_argument("mosaic", type=Path, help="the zarr store to build, or to predict")
    parser.add_argument("--size", type=int, default=2048, help="build: px per side (stored in 512² chunks)")
    parser.add_argument("--model", default="unet_seg_dubai")
    parser.add_argument("--chunk", type=int, default=1024, help="run: geonb predict --chunk")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.mosaic, args.size, 512)
    else:
        run(args.mosaic, args.model, args.chunk, args.json)

if __name__ == "__main__":
    main()
