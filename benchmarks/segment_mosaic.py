"""Out-of-core segmentation of a large RGB mosaic: chunked zarr in, class ids out, chunk by chunk.

``build`` makes a ``size``×``size`` RGB mosaic from the real Dubai aerial images (tile_7's nine
2061×1817 parts, repeated in a grid and mirrored every other column/row so that neighbours meet at
their own edges) and writes it as a zarr store in ``chunk``² chunks, one row of chunks at a time.

``predict`` opens the mosaic lazily, predicts it with ``geonb.tasks.segment.infer.predict_lazy`` (each chunk
with the network's halo of its neighbours, dask ``map_overlap``) and writes the class ids to zarr chunk by
chunk (``geonb.io.write_zarr``), on the local threads (``--workers``) or on a ``dask.distributed``
cluster given by ``--scheduler`` (e.g. ``tcp://10.0.0.5:8786``). Peak memory is bounded by the chunk
size, not the image: measure it with ``/usr/bin/time -v``. It prints time, Mpx/s and the projected time
for one 54 000 × 38 000 px orthophoto of the source work, and with ``--preview`` a downsampled PNG of
the mosaic and its classes.

    python benchmarks/segment_mosaic.py build /tmp/mosaic.zarr --size 10240 --chunk 1024
    /usr/bin/time -v python benchmarks/segment_mosaic.py predict /tmp/mosaic.zarr /tmp/classes.zarr \\
        --model runs/seg_full/segment/models/fcn/model.pt [--workers 1] [--scheduler ADDRESS] [--preview p.png]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

from geonb import aerial, images
from geonb.io import write_zarr
from geonb.outputs import refuse_input_as_output
from geonb.modelfile import TrainedModel
from geonb.tasks.segment.infer import predict_lazy

ORTHOPHOTO = (54_000, 38_000)  # px of one orthophoto of the source work


def build(out: Path, size: int, chunk: int) -> None:
    parts = [images.read_rgb(aerial.data_dir() / "tile_7" / "images" / f"image_part_{k:03d}.jpg") for k in aerial.PARTS]
    h, w = min(p.shape[0] for p in parts), min(p.shape[1] for p in parts)
    parts = [p[:h, :w] for p in parts]

    def cell(i, j):  # mirrored every other row/column: neighbours meet at their own edges
        img = parts[(i * 7 + j) % len(parts)]
        return img[::-1 if i % 2 else 1, ::-1 if j % 2 else 1]

    import zarr

    store = zarr.open_array(str(out), mode="w", shape=(size, size, 3), chunks=(chunk, chunk, 3), dtype="uint8")
    for r0 in range(0, size, chunk):  # one row of chunks in memory at a time
        rows = np.empty((min(chunk, size - r0), size, 3), np.uint8)
        for r in range(r0, r0 + len(rows)):
            i, rr = divmod(r, h)
            line = np.concatenate([cell(i, j)[rr] for j in range(-(-size // w))])[:size]
            rows[r - r0] = line
        store[r0:r0 + len(rows)] = rows
    print(f"mosaic {size}×{size} px from {len(parts)} real {h}×{w} images → {out} (chunks {chunk}²)")


def open_mosaic(path: Path) -> xr.DataArray:
    import dask.array as dsa
    import zarr

    arr = zarr.open_array(str(path), mode="r")  # read-only
    return xr.DataArray(dsa.from_zarr(arr), dims=("y", "x", "band"), name="rgb")


def predict(mosaic: Path, out: Path, model_path: Path, workers: int, scheduler: str | None, preview: Path | None):
    import dask

    out = refuse_input_as_output(out, [mosaic, model_path])
    model = TrainedModel.load(model_path, task="segment")
    photo = open_mosaic(mosaic)
    classes = predict_lazy(model, photo)
    ds = classes.to_dataset()
    t0 = time.perf_counter()
    if scheduler:
        from distributed import Client

        with Client(scheduler):
            write_zarr(ds, out)
    else:
        with dask.config.set(scheduler="threads", num_workers=workers):
            write_zarr(ds, out)
    seconds = time.perf_counter() - t0
    mpx = photo.shape[0] * photo.shape[1] / 1e6
    rate = mpx / seconds
    ortho = ORTHOPHOTO[0] * ORTHOPHOTO[1] / 1e6
    print(f"predicted {photo.shape[0]}×{photo.shape[1]} px ({mpx:.1f} Mpx, chunks {photo.data.chunksize[:2]}, "
          f"{model.arch} width {model.arch_args['width']} depth {model.arch_args['depth']}, halo "
          f"{model.network().halo} px) in {seconds:.1f} s: {rate:.3f} Mpx/s; one 54 000 × 38 000 px orthophoto "
          f"({ortho:.0f} Mpx) would take {ortho / rate / 3600:.2f} h")
    result = xr.open_zarr(out)["class"]
    shares = np.bincount(result.data[::8, ::8].compute().ravel(), minlength=256)
    names = model.inputs["classes"]
    print("class shares (every 8th px):", ", ".join(f"{n} {s / shares.sum():.3f}" for n, s in zip(names, shares)))
    if preview:
        import matplotlib.pyplot as plt

        step = max(1, photo.shape[0] // 1200)
        colours = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in model.inputs["colours"]], np.uint8)
        fig, axes = plt.subplots(1, 2, figsize=(14, 7))
        axes[0].imshow(photo.data[::step, ::step].compute())
        axes[1].imshow(aerial.colourise(result.data[::step, ::step].compute(), colours), interpolation="nearest")
        for ax, title in zip(axes, ("mosaic (real Dubai images, tiled and mirrored)", f"{model.arch} classes")):
            ax.set_title(title)
            ax.axis("off")
        fig.savefig(preview, dpi=90, bbox_inches="tight")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    b.add_argument("--size", type=int, default=10240)
    b.add_argument("--chunk", type=int, default=1024)
    p = sub.add_parser("predict")
    p.add_argument("mosaic", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--workers", type=int, default=1, help="local dask threads (each runs torch's own threads)")
    p.add_argument("--scheduler", help="address of a dask.distributed scheduler (default: local threads)")
    p.add_argument("--preview", type=Path, help="PNG: the mosaic and its classes, downsampled")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out, args.size, args.chunk)
    else:
        predict(args.mosaic, args.out, args.model, args.workers, args.scheduler, args.preview)


if __name__ == "__main__":
    main()
