"""Training recipes, one file each; importing this package registers them in ``METHODS``.

``build(arch, ...)`` makes an arch ready to train: its networks by role (seeded, so the
initial weights are part of a reproducible run), on the device, inside its method.
"""
from __future__ import annotations

import inspect

import torch

from ..registry import METHODS, Arch
from . import acgan, classification, gaussian_nll, masked, paired_gan, regression  # noqa: F401


def build(arch: Arch, arch_args: dict, *, lr: float, seed: int, device, role_args: dict | None = None, **settings):
    """The arch's method with its networks: generator from ``arch_args``, the others from
    ``role_args[role]`` (e.g. the discriminator's width) or their defaults.

    ``settings`` are a task's settings for any of its archs (e.g. ``adv_weight``); each method
    gets those its constructor takes, on top of the arch's own ``method_args``.
    """
    torch.manual_seed(seed)
    args = {**(role_args or {}), "generator": arch_args}
    nets = {role: arch.build(role, **args.get(role, {})).to(device) for role in arch.networks}
    cls = METHODS.get(arch.method)
    takes = inspect.signature(cls.__init__).parameters
    options = {**{k: v for k, v in settings.items() if k in takes}, **arch.method_args}
    return cls(nets, lr=lr, **options)
