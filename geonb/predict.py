"""The one predictor: a model file in, network outputs out, for every task.

``Predictor(model)`` rebuilds the generator and the arch's method, then ``predictor(x)``
runs the method's forward pass on normalised input ``x`` — a tensor (B, C, h, w), or
``(grid, [extra grids])`` where each extra grid is at an integer multiple r of the
grid's resolution (conditioning grids) — and returns the combined outputs of the
model's weight snapshots in normalised units (``{"mean": …}``, plus ``"variance"`` for
a Gaussian model). Large grids go in tiles of ``tile`` cells with ``halo`` cells of
context that are cropped off; the halo defaults to the network's receptive-field radius
(``net.halo``), which makes tiled and one-shot predictions equal (tile sizes a multiple
of ``net.multiple``, the factor the network pools by; inputs are padded to it). The grid's
outer edge is replicate-padded by the halo; networks trained with zero-padded edges
(``net.edge == "zero"``: the U-Nets) get no halo in a one-shot prediction unless asked.
The task modules turn data into ``x`` and the outputs back into physical units and xarray objects.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from .errors import GeonbError
from .methods.base import forward
from .methods.gaussian_nll import AVERAGING, average_weights
from .modelfile import TrainedModel
from .registry import METHODS


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (…, H, W) at the bottom/right so pooling divides evenly; returns the old size to crop back."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple)), (h, w)


def _replicate(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p), mode="replicate") if p else x


class Predictor:
    def __init__(self, model: TrainedModel | str, *, average: str | None = None, float64: bool = False,
                 device: str = "cpu"):
        self.model = model if isinstance(model, TrainedModel) else TrainedModel.load(model)
        average = average or self.model.method_args.get("average", "predictions")
        if average not in AVERAGING:
            raise GeonbError(f"average={average!r}: use 'predictions' or 'weights'.")
        self.dtype = torch.float64 if float64 else torch.float32
        self.device = torch.device(device)
        self.average = average
        self.states = self.model.weights
        net = self.model.network()
        self.net = (copy.deepcopy(net).double() if float64 else net).to(self.device)
        self.residual = bool(self.model.method_args.get("residual", False))
        self.combine = METHODS.get(self.model.method).combine
        self.halo = int(getattr(self.net, "halo", 0))
        self.multiple = int(getattr(self.net, "multiple", 1))
        self.factor = int(getattr(self.net, "factor", 1))

    def tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype)

    @torch.no_grad()
    def __call__(self, x, *, tile: int | None = None, halo: int | None = None, batch: int = 32,
                 last: int | None = None) -> dict[str, np.ndarray]:
        """Outputs for input ``x`` (normalised), combined over the last ``last`` snapshots (default all)."""
        outputs = []
        states = self.states[-(last or len(self.states)):]
        if self.average == "weights" and len(states) > 1:
            states = [average_weights(states)]
        for state in states:
            self.net.load_state_dict(state)
            self.net.eval()
            chunks = [self._tiled(part, tile, halo) for part in _split(x, batch)]
            outputs.append(torch.cat(chunks).numpy())
        return self.combine(outputs)

    def _tiled(self, x, tile, halo) -> torch.Tensor:
        """One batch: replicate-pad by the halo once, then predict ``tile``-cell tiles and crop their halos."""
        grid, extras = (x[0], list(x[1])) if isinstance(x, tuple) else (x, None)
        if halo is None:
            halo = 0 if tile is None and getattr(self.net, "edge", "") == "zero" else self.halo
        f = self.factor
        _, _, h, w = grid.shape
        scales = [e.shape[-1] // w for e in extras or []]
        grid_p = _replicate(grid.to(self.device, self.dtype), halo)
        extras_p = [_replicate(e.to(self.device, self.dtype), halo * r) for e, r in zip(extras or [], scales)]
        tile = max(h, w) if tile is None else int(tile)
        out = None
        for i in range(0, h, tile):
            for j in range(0, w, tile):
                th, tw = min(tile, h - i), min(tile, w - j)
                part = grid_p[..., i:i + th + 2 * halo, j:j + tw + 2 * halo]
                part, (ph, pw) = pad_to_multiple(part, self.multiple)
                if extras is None:
                    y = forward(self.net, part, self.residual)
                else:
                    cs = [e[..., i * r:(i + th + 2 * halo) * r, j * r:(j + tw + 2 * halo) * r]
                          for e, r in zip(extras_p, scales)]
                    y = forward(self.net, (part, cs))
                y = y[..., : ph * f, : pw * f].cpu()
                if out is None:
                    out = torch.empty((grid.shape[0], y.shape[1], h * f, w * f), dtype=y.dtype)
                out[..., i * f:(i + th) * f, j * f:(j + tw) * f] = \
                    y[..., halo * f:(halo + th) * f, halo * f:(halo + tw) * f]
        return out


def _split(x, batch: int):
    """Split the batch dimension into chunks (memory), keeping the ``(grid, extras)`` structure."""
    if isinstance(x, tuple):
        grid, extras = x
        return [(grid[i:i + batch], [e[i:i + batch] for e in extras]) for i in range(0, len(grid), batch)]
    return list(x.split(batch))


# ---------------------------------------------------------------- command line: geonb predict
OPTIONS = {"cond": "--cond", "tile": "--tile", "mask_var": "--mask-var", "allow_outliers": "--allow-outliers"}


def predict_command(args) -> int:
    """``geonb predict``: apply any model file to a NetCDF/zarr file; what it does is the model's task's."""
    from .io import check_outputs, write_output
    from .tasks import get_task

    out = check_outputs({"--out": args.out},
                        [args.input, args.model, *(c.rpartition(":")[0] for c in args.cond or [])],
                        overwrite=args.overwrite)["--out"]
    model = TrainedModel.load(args.model)
    task = get_task(model.task)
    if task.predict_file is None:
        raise GeonbError(f"{args.model} is a {model.task} model; `geonb predict` does not apply it to files.")
    ignored = [flag for name, flag in OPTIONS.items() if getattr(args, name) and name not in task.predict_options]
    if ignored:
        raise GeonbError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to a {model.task} "
                         f"model ({model.arch}); drop {'it' if len(ignored) == 1 else 'them'} "
                         f"({model.task} takes {', '.join(OPTIONS[o] for o in task.predict_options) or 'none of them'}).")
    ds = task.predict_file(model, args)
    write_output(ds, out, f"geonb predict --model {args.model} --input {args.input} --var {args.var}")
    print(f"wrote {out} ({model.task} model {model.arch})")
    return 0


def add_cli(subparsers) -> None:
    from .params import Param, cli_type

    p = subparsers.add_parser("predict", help="apply a trained model to a file (downscale, fill gaps, photo → map, "
                                                  "image → land-cover classes)")
    p.add_argument("--model", required=True, help="a geonb model file (.pt)")
    p.add_argument("--input", required=True,
                   help="NetCDF/zarr file or embedded dataset name (image models: also JPEG/PNG/(Geo)TIFF)")
    p.add_argument("--var", default="", help="the variable to predict from")
    p.add_argument("--out", required=True, help="output file, written atomically: .nc or .zarr, or for image models "
                   ".png/.jpg/.tif")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--cond", nargs="*", metavar="FILE:VAR[@r]", help="downscaling: the model's conditioning grids")
    p.add_argument("--tile", type=cli_type(Param("tile", int, None, "tile size in input cells", min=1)),
                   help="tile size in input cells (downscaling: low-res cells, default 64; "
                   "image models: a multiple of the network's pooling, default one pass); the halo is added and cropped")
    p.add_argument("--mask-var", help="gap filling: land/sea mask variable (1 = sea)")
    p.add_argument("--allow-outliers", action="store_true",
                   help="gridded inputs: keep values far outside the field's robust range (else refused)")
    p.set_defaults(func=predict_command)
