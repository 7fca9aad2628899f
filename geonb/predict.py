"""The one predictor: a model file in, network outputs out, for every task.

``Predictor(model)`` rebuilds the generator and the arch's method, then ``predictor(x)``
runs the method's forward pass on normalised input ``x`` — a tensor (B, C, h, w), or
``(grid, [extra grids])`` where each extra grid is at an integer multiple r of the
grid's resolution (conditioning grids) — and returns the combined outputs of the
model's weight snapshots in normalised units (``{"mean": …}``, plus ``"variance"`` for
a Gaussian model). Large grids go in tiles of ``tile`` cells with ``halo`` cells of
context that are cropped off; the halo defaults to the network's receptive-field radius
(``net.halo``), which makes tiled and one-shot predictions equal (tile sizes a multiple
of ``net.multiple``, the factor the network pools by; inputs are padded to it), or to the
*effective* radius a model file stores (``info["effective_halo"]``, measured once when it was
saved, ``Predictor.effective_halo``): tiled then equals one-shot within ``info["halo_tol"]`` of
the output's scale, for networks (srgan's 12 RRDBs: 187 cells) whose theoretical field is far
wider than what moves their output. ``tile="auto"`` sizes tiles from the free memory
(``Predictor.auto_tile``). The grid's outer edge is replicate-padded by the halo; networks trained
with zero-padded edges (``net.edge == "zero"``: the U-Nets) get no halo in a one-shot prediction
unless asked. The task modules turn data into ``x`` and the outputs back into physical units and
xarray objects.
"""
from __future__ import annotations

import contextlib
import copy
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from .errors import GeonbError
from .methods.base import AVERAGING
from .modelfile import TrainedModel
from .params import Param
from .registry import METHODS


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (…, H, W) at the bottom/right so pooling divides evenly; returns the old size to crop back."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple)), (h, w)


def _replicate(x: torch.Tensor, p: int, r: int = 1) -> torch.Tensor:
    """Replicate-pad (…, H·r, W·r) by ``p`` cells of the coarse grid: whole r×r blocks of a finer
    (conditioning) grid are repeated, so a grid cut into chunks pads the same way (``lazy_map``)."""
    if not p:
        return x
    if r == 1:
        return F.pad(x, (p, p, p, p), mode="replicate")
    b, c, hr, wr = x.shape
    h, w = hr // r, wr // r
    coarse = x.reshape(b, c, h, r, w, r).permute(0, 1, 3, 5, 2, 4).reshape(b, c * r * r, h, w)
    padded = F.pad(coarse, (p, p, p, p), mode="replicate")
    return padded.reshape(b, c, r, r, h + 2 * p, w + 2 * p).permute(0, 1, 4, 2, 5, 3).reshape(
        b, c, (h + 2 * p) * r, (w + 2 * p) * r)


TILE = Param("tile", int, None, "tile size in input cells", min=1, max=65_536)
# The effective halo (``Predictor.effective_halo``): tiled and one-shot predictions may differ by at most
# HALO_TOL × the output's scale, the scale being one normalised unit (the training target's std). It is
# measured with a margin: the smallest radius whose truncation moves the probes' output by ≤ HALO_TOL /
# HALO_MARGIN, for inputs rougher than the probes and grids with more tile edges than the probe's window.
HALO_TOL, HALO_MARGIN = 1e-3, 10.0
# Networks whose receptive-field radius is at most this many input cells keep it as their halo (exact tiles; a
# small halo costs little with tiles of hundreds of cells): srcnn, rsrcnn, the U-Nets, the segmentation nets.
MEASURE_ABOVE = 32
MAX_AUTO_TILE = 4096


def _crop(x, lo: int, hi: int):
    """Cells ``lo:hi`` along both axes of ``x`` (a tensor, or ``(grid, [extras])`` with extras at r× its resolution)."""
    if not isinstance(x, tuple):
        return x[..., lo:hi, lo:hi]
    grid, extras = x
    rs = [e.shape[-1] // grid.shape[-1] for e in extras]
    return grid[..., lo:hi, lo:hi], [e[..., lo * r:hi * r, lo * r:hi * r] for e, r in zip(extras, rs)]


def peak_bytes(fn, *args) -> int:
    """The most bytes of tensors alive at once while ``fn(*args)`` runs (every op's output counted from its
    creation until freed; parameters and inputs not included): a forward pass's working memory."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Peak(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.storages = set()

        def free(self, ptr, n):
            self.live -= n
            self.storages.discard(ptr)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.storages:
                    ptr, n = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
                    self.storages.add(ptr)
                    self.live += n
                    weakref.finalize(t, self.free, ptr, n)
            self.peak = max(self.peak, self.live)
            return out

    with Peak() as mode:
        fn(*args)
    return mode.peak


class Predictor:
    """A model file's generator and method, ready to predict: the method's forward pass
    (``Method.infer``) on every tile, its snapshots averaged and combined by the method
    (``Method.average``, ``Method.combine``); tiles and padding follow the network's
    ``halo``, ``multiple``, ``factor`` and ``edge`` (``models.base.GeonbNet``)."""

    def __init__(self, model: TrainedModel | str, *, average: str | None = None, float64: bool = False,
                 device: str = "cpu"):
        self.model = model if isinstance(model, TrainedModel) else TrainedModel.load(model)
        average = average or self.model.method_args.get("average", "predictions")
        if average not in AVERAGING:
            raise GeonbError(f"average={average!r}: use {' or '.join(map(repr, AVERAGING))}.")
        self.dtype = torch.float64 if float64 else torch.float32
        self.device = torch.device(device)
        self.average = average
        self.states = self.model.weights
        net = self.model.network()
        self.net = (copy.deepcopy(net).double() if float64 else net).to(self.device)
        self.method = METHODS.get(self.model.method).for_prediction(self.model.method_args)
        self.multiple, self.factor = int(self.net.multiple), int(self.net.factor)
        measured = self.model.info.get("effective_halo")  # checked on load: 0 … net.halo
        self.halo = int(self.net.halo) if measured is None else int(measured)
        self._cell_bytes = None

    def tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype)

    @torch.no_grad()
    def __call__(self, x, *, tile: int | str | None = None, halo: int | None = None, batch: int = 32,
                 last: int | None = None, padded: bool = False) -> dict[str, np.ndarray]:
        """Outputs for input ``x`` (normalised), combined over the last ``last`` snapshots (default all).

        ``tile``: input cells per tile side, ``None`` one pass, ``"auto"`` sized from the free memory
        (``auto_tile``). ``padded``: ``x`` already holds ``halo`` cells of context on every side (a dask
        chunk with its overlap, ``lazy_map``): nothing is padded, and the output covers the inner cells only.
        The output's size is checked against the free memory before anything runs, and a non-finite
        output of a finite input (a model file's numbers out of range) is refused, never returned."""
        if tile == "auto":
            tile = self.auto_tile()
        elif tile is not None:
            TILE.check(tile)  # the API takes what `geonb predict --tile` takes
        outputs = []
        states = self.method.average(self.states[-(last or len(self.states)):], self.average)
        grid = x[0] if isinstance(x, tuple) else x
        self._check_memory(grid.shape, len(states))
        for state in states:
            self.net.load_state_dict(state)
            self.net.eval()
            chunks = [self._tiled(part, tile, halo, padded) for part in _split(x, batch)]
            outputs.append(torch.cat(chunks).numpy())
        combined = self.method.combine(outputs)
        finite_in = all(bool(torch.isfinite(t).all()) for t in ([grid, *x[1]] if isinstance(x, tuple) else [grid]))
        wrong = {k: int((~np.isfinite(v)).sum()) for k, v in combined.items() if not np.isfinite(v).all()}
        if finite_in and wrong:
            raise GeonbError(f"the model gave NaN or infinite outputs for a finite input ({wrong} values): its "
                             f"normalisers or weights are out of range for this data; retrain it on data like this.")
        return combined

    def _check_memory(self, shape, snapshots: int) -> None:
        """Refuse an output that cannot fit in the free memory (a scale factor or grid far too large),
        giving the size asked for; out-of-core prediction (``--out X.zarr``) predicts chunk by chunk."""
        import psutil

        b, _, h, w = shape
        need = b * h * w * self.factor ** 2 * self.dtype.itemsize * (snapshots + 1)  # each snapshot's output + combined
        free = psutil.virtual_memory().available
        if need > free:
            raise GeonbError(f"this prediction's output needs at least {need / 1e9:,.1f} GB of memory ({b}×{h}×{w} cells "
                             f"× {self.factor}² per cell, {snapshots} snapshot(s)); {free / 1e9:.1f} GB is free. Predict "
                             "a smaller region, or write it out of core (geonb predict --out X.zarr --chunk N).")

    def auto_tile(self, share: int = 1) -> int:
        """The tile side (input cells) when none is given: the largest whose forward pass, halo included,
        takes at most the free memory / (2 × ``share``) (``share``: tiles predicted at once, e.g. dask's
        threads), at most ``MAX_AUTO_TILE``, a multiple of the network's pooling. The pass's working memory
        per input cell is measured once (``peak_bytes`` on a small probe). With srgan's measured halo of a few
        cells, tiles of hundreds of cells keep the halo's share of the work to a few per cent."""
        import psutil

        if self._cell_bytes is None:
            side = max(16, 2 * self.multiple)
            probe = self._probe(side)
            with torch.no_grad():
                self._cell_bytes = peak_bytes(lambda: self.method.infer(self.net.eval(), probe)) / side ** 2
        budget = psutil.virtual_memory().available / (2 * max(1, share))
        side = int((budget / max(self._cell_bytes, 1.0)) ** 0.5) - 2 * self.halo
        side = min(side, MAX_AUTO_TILE) // self.multiple * self.multiple
        return max(side, self.multiple)

    def _probe(self, side: int):
        """A zero input of ``side``² cells in the shape the network takes (its conditioning grids at their resolutions)."""
        arch_args = self.model.arch_args
        if "cond_res" in arch_args:  # a downscaling network: (grid, [conditioning grids])
            return (torch.zeros(1, 1, side, side, dtype=self.dtype, device=self.device),
                    [torch.zeros(1, 1, side * r, side * r, dtype=self.dtype, device=self.device)
                     for r in arch_args["cond_res"]])
        first = next(m for m in self.net.modules() if isinstance(m, torch.nn.Conv2d))
        return torch.zeros(1, first.in_channels, side, side, dtype=self.dtype, device=self.device)

    @torch.no_grad()
    def effective_halo(self, probes, *, tol: float = HALO_TOL, window: int = 32) -> int:
        """The network's effective receptive-field radius (input cells): the smallest ``r`` such that a
        ``window``² block of cells predicted with only ``r`` cells of context (as a tile is: the network's
        own zero padding beyond them) differs from its prediction with the full receptive field
        (``net.halo`` cells) by at most ``tol / HALO_MARGIN`` in every output cell, on each of the
        ``probes`` (inputs of (window + 2·net.halo)² cells, normalised) and each weight snapshot. That
        difference is exactly what a tile boundary costs — every cell beyond ``r`` cut off at once,
        not one impulse — so tiles with this halo equal one pass within ``tol`` (in the output's normalised
        units). ``r`` is found by doubling, then bisection (the difference falls with ``r``), and is a
        multiple of the network's pooling."""
        full, m, f = int(self.net.halo), self.multiple, self.factor
        window = -(-window // m) * m

        def inner(x, r):  # the window's output, predicted with r cells of context
            y = self.method.infer(self.net, _crop(x, full - r, full + window + r))
            return y[..., r * f:(r + window) * f, r * f:(r + window) * f]

        worst = 0
        for state in self.method.average(self.states, self.average):
            self.net.load_state_dict(state)
            self.net.eval()
            probes_x = [_to(x, self.device, self.dtype) for x in probes]
            refs = [inner(x, full) for x in probes_x]

            def fits(r):
                return all(float((inner(x, r) - ref).abs().max()) <= tol / HALO_MARGIN for x, ref in zip(probes_x, refs))

            if fits(worst):
                continue
            lo, hi = worst, max(worst, m)  # doubling from the radius the earlier snapshots needed
            while hi < full and not fits(hi):
                lo, hi = hi, min(2 * hi, full)
            while hi - lo > m:  # fits(hi), not fits(lo)
                mid = (lo + hi) // 2 // m * m
                lo, hi = (lo, mid) if fits(mid) else (mid, hi)
            worst = hi
        return worst

    def _tiled(self, x, tile, halo, padded=False) -> torch.Tensor:
        """One batch: replicate-pad by the halo once (unless ``padded``: ``x`` holds its context), then
        predict ``tile``-cell tiles and crop their halos."""
        grid, extras = (x[0], list(x[1])) if isinstance(x, tuple) else (x, None)
        if halo is None:
            halo = 0 if tile is None and self.net.edge == "zero" and not padded else self.halo
        f = self.factor
        _, _, h, w = grid.shape
        scales = [e.shape[-1] // w for e in extras or []]
        if padded:
            grid_p, extras_p = grid.to(self.device, self.dtype), [e.to(self.device, self.dtype) for e in extras or []]
            h, w = h - 2 * halo, w - 2 * halo
        else:
            grid_p = _replicate(grid.to(self.device, self.dtype), halo)
            extras_p = [_replicate(e.to(self.device, self.dtype), halo, r) for e, r in zip(extras or [], scales)]
        tile = max(h, w) if tile is None else int(tile)
        out = None
        for i in range(0, h, tile):
            for j in range(0, w, tile):
                th, tw = min(tile, h - i), min(tile, w - j)
                part = grid_p[..., i:i + th + 2 * halo, j:j + tw + 2 * halo]
                part, (ph, pw) = pad_to_multiple(part, self.multiple)
                if extras is not None:
                    part = (part, [e[..., i * r:(i + th + 2 * halo) * r, j * r:(j + tw + 2 * halo) * r]
                                   for e, r in zip(extras_p, scales)])
                y = self.method.infer(self.net, part)
                y = y[..., : ph * f, : pw * f].cpu()
                if out is None:
                    out = torch.empty((grid.shape[0], y.shape[1], h * f, w * f), dtype=y.dtype)
                out[..., i * f:(i + th) * f, j * f:(j + tw) * f] = \
                    y[..., halo * f:(halo + th) * f, halo * f:(halo + tw) * f]
        return out


def _to(x, device, dtype):
    """``x`` (a tensor or ``(grid, [extras])``) on ``device`` as ``dtype``."""
    if isinstance(x, tuple):
        return x[0].to(device, dtype), [e.to(device, dtype) for e in x[1]]
    return x.to(device, dtype)


def _split(x, batch: int):
    """Split the batch dimension into chunks (memory), keeping the ``(grid, extras)`` structure."""
    if isinstance(x, tuple):
        grid, extras = x
        return [(grid[i:i + batch], [e[i:i + batch] for e in extras]) for i in range(0, len(grid), batch)]
    return list(x.split(batch))


# ---------------------------------------------------------------- out of core: dask
def fine_to_channels(grid, r: int):
    """A (H·r, W·r) array (numpy or dask) → (H, W, r·r): each coarse cell's r×r fine cells as channels,
    so a conditioning grid is chunked and overlapped with the coarse grid it belongs to."""
    h, w = grid.shape[0] // r, grid.shape[1] // r
    return grid.reshape(h, r, w, r).transpose(0, 2, 1, 3).reshape(h, w, r * r)


def channels_to_fine(block: np.ndarray, r: int) -> np.ndarray:
    """The inverse of ``fine_to_channels`` for one block."""
    h, w = block.shape[:2]
    return block.reshape(h, w, r, r).transpose(0, 2, 1, 3).reshape(h * r, w * r)


def lazy_map(fn, data, *, halo: int, factor: int = 1, multiple: int = 1, dtype=np.float32, crops: bool = False,
             bands: int = 0):
    """Apply ``fn`` to a dask array ``data`` (y, x, channel) chunk by chunk: each chunk gets ``halo``
    cells of its neighbours (replicated at the array's edge, as the one-shot ``Predictor`` pads),
    ``fn(block) → (factor·h, factor·w)`` and the halo is cropped (``crops``: ``fn`` returns the inner
    cells itself, e.g. ``Predictor(…, padded=True)``, which takes the overlap as its tiles' context
    instead of predicting it), so the result equals a
    one-shot prediction and memory is bounded by the chunk size. Returns a lazy (y·f, x·f) array
    for any dask scheduler (threads, or a ``dask.distributed`` cluster). Chunks along y, x must
    be multiples of ``multiple`` (a network's pooling; the last one excepted). ``bands``: ``fn`` returns
    (factor·h, factor·w, bands), the result is lazy (y·f, x·f, bands): several outputs of one pass."""
    data = data.rechunk({2: -1})
    for axis, name in ((0, "y"), (1, "x")):
        chunks = list(data.chunks[axis])
        if any(c % multiple for c in chunks[:-1]):
            raise GeonbError(f"chunks along {name} {tuple(chunks[:3])}… are not multiples of {multiple} (the "
                             f"network's pooling); rechunk to e.g. {multiple * max(1, 1024 // multiple)}.")
        if len(chunks) > 1 and chunks[-1] < halo:  # a thin last chunk joins the one before it
            chunks[-2:] = [chunks[-2] + chunks[-1]]
        if len(chunks) > 1 and min(chunks) < halo:
            raise GeonbError(f"chunks along {name} of {min(chunks)} cells are thinner than the halo ({halo}) the "
                             f"network needs; use chunks of at least {halo} (e.g. 512).")
        data = data.rechunk({axis: tuple(chunks)})
    crop = halo * factor

    def block(b):
        out = fn(b)
        return out if crops else out[crop:out.shape[0] - crop, crop:out.shape[1] - crop]

    out = data.map_overlap(block, depth={0: halo, 1: halo, 2: 0}, boundary={0: "nearest", 1: "nearest", 2: "none"},
                           trim=False, drop_axis=[] if bands else 2, dtype=dtype,
                           meta=np.empty((0,) * (3 if bands else 2), dtype),
                           chunks=(*(tuple(c * factor for c in data.chunks[a]) for a in (0, 1)), *[(bands,)][:bool(bands)]))
    return out.rechunk(tuple(c[0] for c in out.chunks))  # regular chunks (zarr): a joined last chunk is split


@contextlib.contextmanager
def dask_scheduler(address: str | None = None):
    """Inside: dask computes (``.compute()``, lazy writes) on the cluster at ``address`` (e.g.
    ``tcp://host:8786``, a ``dask.distributed`` scheduler; its dashboard shows progress), or
    without one on this machine's threads with a tqdm bar of finished tasks."""
    if address:
        from distributed import Client

        try:
            client = Client(address, timeout="20s")
        except OSError as exc:
            raise GeonbError(f"--scheduler {address}: no dask scheduler answers there ({exc}); start one "
                             "(`dask scheduler`, then workers) or drop --scheduler to use this machine.") from None
        with client:
            print(f"[geonb] dask cluster {address}: dashboard {client.dashboard_link}", flush=True)
            yield client
        return
    from dask.callbacks import Callback
    from .progress import progress_bar

    threads = torch.get_num_threads()

    class Bar(Callback):  # tqdm, so the bar also shows in notebooks
        def _start_state(self, _dsk, state):
            self.bar = progress_bar(total=sum(len(state[k]) for k in ("ready", "waiting", "running")), unit="task",
                            desc="dask")

        def _posttask(self, *_):
            self.bar.update()

        def _finish(self, *_):
            self.bar.close()

    torch.set_num_threads(1)  # dask's threads each run one chunk: parallel chunks, not threads fighting in each
    try:
        with Bar():
            yield None
    finally:
        torch.set_num_threads(threads)
