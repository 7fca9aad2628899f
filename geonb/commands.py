"""geonb's subcommands: name → one-line help, in the order ``geonb --help`` lists them.

Each command's parser is built by its module's ``add_cli`` with this help; ``geonb --help`` alone reads
only this table, so it answers without importing torch (the full parser imports every command).
"""
from __future__ import annotations

COMMANDS = {
    "run": "the main job: execute notebooks 01→06 with papermill",
    "archs": "list the architectures with their task",
    "train": "train any arch on its task's default data or yours; `geonb params ARCH` lists its flags",
    "params": "the parameters of an arch's task: flags of `geonb train`, -p of `geonb run`",
    "predict": "apply a trained model to a file (downscale, fill gaps, photo → map, image → land-cover classes)",
    "generate": "generate digits with a trained acgan model (NetCDF out)",
    "fill": "fill clouds in a NetCDF cube (dincae, dineof or unet) with error σ",
    "doctor": "print versions, device, data found and a writable run dir (for bug reports)",
    "data": "list the real datasets shipped with geonb: what, licence, where",
    "info": "the model card of a geonb model file: task, arch, data, scores, versions",
    "models": "the trained models geonb ships: task, arch, data, held-out scores beside the baselines; use a name "
              "with --model or -p init",
}


def add(subparsers, name: str, **kwargs):
    """The subparser of command ``name`` with its help from ``COMMANDS``."""
    return subparsers.add_parser(name, help=COMMANDS[name], **kwargs)
