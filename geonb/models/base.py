"""The contract every geonb network keeps: what the one predictor (``geonb.predict``) reads from it.

``GeonbNet`` is an ``nn.Module`` whose class attributes (or attributes set in ``__init__``, where
they depend on the arguments) tell the predictor how to tile and pad its input:

``factor``    output cells per input cell along each axis (a downscaling network's scale factor); 1:
              the output is on the input's grid.
``halo``      the receptive-field radius in input cells: each tile gets this many cells of context,
              cropped off its output, so tiled and one-shot predictions are equal. A multiple of
              ``multiple`` (tiles start on the pooling grid). Where it is wider than ``predict.MEASURE_ABOVE``
              a model file may store a smaller, measured one (``Predictor.effective_halo``).
``multiple``  what the network pools by (2^levels): inputs are zero-padded at the bottom/right to a
              multiple of it, and tiles must be multiples of it.
``edge``      how the network saw the outer edge of its training patches: ``"replicate"`` (the
              predictor replicate-pads the grid's edge by the halo) or ``"zero"`` (trained with
              zero-padded convolutions at patch edges, the U-Nets: a one-shot prediction adds no halo,
              so it equals the network's own pass; tiled prediction still pads by the halo).

The defaults (1, 0, 1, ``"replicate"``) are those of a network that neither scales, sees beyond its
cell, nor pools.

The forward pass the predictor runs (``Method.infer``, default ``methods.base.forward``):

- ``forward(x)``: ``x`` (B, C_in, H, W) → (B, C_out, H·factor, W·factor) — inpainting, clouds,
  translation, segmentation (C_out: the classes' logits);
- ``forward(lr, conds)``: downscaling networks, ``lr`` (B, 1, h, w) and ``conds`` a list of
  conditioning grids (B, 1, h·r, w·r), one per ``cond_res`` r → (B, 1, h·factor, w·factor); the
  predictor hands an input ``(grid, [grids])`` over as ``net(grid, [grids])``.

Networks the predictor never runs (discriminators, ``acgan_generator``, ``digit_cnn``) are
GeonbNets too, with the defaults; their ``forward`` is what their method calls (documented in
each class).
"""
from __future__ import annotations

from torch import nn

EDGES = ("replicate", "zero")


class GeonbNet(nn.Module):
    """A network geonb trains and predicts with; see the module's docstring for the attributes."""

    factor: int = 1
    halo: int = 0
    multiple: int = 1
    edge: str = "replicate"
