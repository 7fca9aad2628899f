"""One epoch loop for every architecture: progress, early stopping, checkpoints, resume.

A model family supplies ``train_step(batch) -> {name: float}`` (one optimisation step,
a GAN updates both networks there) and ``validate() -> {"val_loss": float, ...}``.
Each epoch ends with ``last.pt`` (weights, optimisers, RNG state, history) so a killed
run resumes where it stopped; ``best.pt`` holds the weights with the lowest val_loss.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from .errors import GeonbError
from .io import load_checkpoint, save_checkpoint


def config_key(config: dict) -> str:
    """A short hash to name a checkpoint folder: other parameters or data never resume it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resumed_epoch(ckpt_dir) -> int:
    """The last finished epoch of the run checkpointed in ``ckpt_dir`` (0 for a fresh run)."""
    last = Path(ckpt_dir) / "last.pt"
    return int(load_checkpoint(last)["epoch"]) if last.exists() else 0


def pick_device(prefer: str = "auto") -> torch.device:
    """cuda when present (or asked for), else cpu; printed loudly so users notice."""
    if prefer == "auto":
        prefer = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(prefer)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"=== geonb: training on {device} ({name}) ===", flush=True)
    return device


def fit(
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    batches: Callable[[int], Iterable],
    train_step: Callable[[object], dict],
    validate: Callable[[], dict],
    ckpt_dir,
    *,
    epochs: int,
    patience: int = 5,
    seed: int = 0,
    desc: str = "train",
) -> list[dict]:
    """Train until ``epochs`` or ``patience`` epochs without a better val_loss.

    ``batches(epoch)`` yields the epoch's batches (shuffle with a generator seeded by
    the epoch so a resumed run sees the same order). Returns the history: one dict
    per epoch with the mean of each train_step value and the validate() values.
    """
    ckpt_dir = Path(ckpt_dir)
    last, best = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    state = {"epoch": 0, "history": [], "best": math.inf, "bad_epochs": 0, "stopped": False}
    if last.exists():
        saved = load_checkpoint(last)
        for name, module in modules.items():
            module.load_state_dict(saved["modules"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(saved["optimizers"][name])
        torch.set_rng_state(saved["rng"])
        if "cuda_rng" in saved and torch.cuda.is_available():  # GAN noise and dropout drawn on the GPU
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        state = {k: saved[k] for k in state}
        print(f"resuming {desc} from epoch {state['epoch']} ({last})", flush=True)
    else:
        torch.manual_seed(seed)
    epoch_bar = tqdm(range(state["epoch"], epochs), desc=desc, unit="epoch", initial=state["epoch"], total=epochs)
    for epoch in epoch_bar:
        if state["stopped"]:
            break
        for module in modules.values():
            module.train()
        sums: dict[str, float] = {}
        count = 0
        for batch in batches(epoch):
            for key, value in train_step(batch).items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        for module in modules.values():
            module.eval()
        with torch.no_grad():
            val = {k: float(v) for k, v in validate().items()}
        if not math.isfinite(val["val_loss"]):
            raise GeonbError(f"{desc}: validation loss is {val['val_loss']} at epoch {epoch + 1}; the training "
                             "diverged. Lower lr, or check the inputs for NaN/inf values.")
        record = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()}, **val}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if val["val_loss"] < state["best"]:
            state["best"], state["bad_epochs"] = val["val_loss"], 0
            save_checkpoint(best, {"modules": {n: m.state_dict() for n, m in modules.items()}, "epoch": epoch + 1})
        else:
            state["bad_epochs"] += 1
            state["stopped"] = state["bad_epochs"] >= patience
        save_checkpoint(last, {
            **state,
            "modules": {n: m.state_dict() for n, m in modules.items()},
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        })
        epoch_bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
    saved_best = load_checkpoint(best)
    for name, module in modules.items():
        module.load_state_dict(saved_best["modules"][name])
        module.eval()
    return state["history"]
