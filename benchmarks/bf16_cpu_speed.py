"""Training speed of the main job's networks on this CPU, float32 against bf16 autocast, in one run.

dincae and the seed unet train 8 epochs on the Alboran cube (the clouds task's defaults, no
validation points), twice each, alternating float32 and bf16; prints seconds per epoch.

    python benchmarks/bf16_cpu_speed.py
"""
import tempfile

import torch

from geonb.cloudmodel import train_on_cube
from geonb.data import load_field
from geonb.training import Accelerator, cpu_has_bf16

EPOCHS = 8


def main() -> None:
    field = load_field("alboran", "SST")
    coords = (field.lat.values, field.lon.values, field.time.values)
    print(f"native bf16 on this CPU: {cpu_has_bf16()}; torch threads: {torch.get_num_threads()}")
    for arch in ("dincae", "unet"):
        for amp in (False, True, False, True):
            with tempfile.TemporaryDirectory() as ckpt:
                model = train_on_cube(field.values, *coords, arch=arch, ckpt_dir=ckpt, seed=0, epochs=EPOCHS,
                                      patience=100, device=Accelerator(torch.device("cpu"), amp=amp))
            print(f"{arch} {'bf16' if amp else 'float32'}: {model.info['train_seconds'] / EPOCHS:.2f} s/epoch",
                  flush=True)


if __name__ == "__main__":
    main()
