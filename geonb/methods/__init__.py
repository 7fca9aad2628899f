"""Training recipes, one file each; importing this package imports every module in it, so a new
file registers its ``Method`` subclasses in ``METHODS`` with no line here.

``build(arch, ...)`` makes an arch ready to train: its networks by role (seeded, so the
initial weights are part of a reproducible run), on the device, inside its method.
"""
from __future__ import annotations

import inspect

import torch

from .. import distributed
from ..registry import METHODS, Arch, import_submodules
from ..training import Accelerator

import_submodules(__name__)


def build(arch: Arch, arch_args: dict, *, lr: float, seed: int, device, role_args: dict | None = None, init: str = "",
          **settings):
    """The arch's method with its networks: generator from ``arch_args``, the others from
    ``role_args[role]`` (e.g. the discriminator's width) or their defaults.

    ``device``: a ``training.Accelerator`` (or a device: default settings). The networks go
    on its device, channels-last on a GPU, compiled when it asks (``nn.Module.compile``
    keeps the state-dict keys), in DDP in a data-parallel run.

    ``init``: a shipped model's name or a model file whose generator weights the generator starts from
    (``pretrained.init_weights``: refused unless of this arch and ``arch_args``); the other roles start afresh.

    ``settings`` are a task's settings for any of its archs (e.g. ``adv_weight``); each method
    gets those its constructor takes, on top of the arch's own ``method_args``.
    """
    acc = device if isinstance(device, Accelerator) else Accelerator(torch.device(device))
    torch.manual_seed(seed)
    args = {**(role_args or {}), "generator": arch_args}
    nets = {}
    for role in arch.networks:
        net = arch.build(role, **args.get(role, {}))
        if init and role == "generator":
            from ..pretrained import init_weights

            net.load_state_dict(init_weights(init, arch, arch_args))
        net = net.to(acc.device)
        if acc.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if acc.compile:
            net.compile()
        nets[role] = distributed.wrap(net, acc.device)
    cls = METHODS.get(arch.method)
    takes = inspect.signature(cls.__init__).parameters
    options = {**{k: v for k, v in settings.items() if k in takes}, **arch.method_args}
    method = cls(nets, lr=lr, **options)
    method.acc = acc
    return method
