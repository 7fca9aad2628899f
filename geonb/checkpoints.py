"""Checkpoint and model files on disk, and the key that names a checkpoint folder.

A checkpoint is saved atomically (``outputs.atomic_path``: a killed save leaves the previous one) and
loaded with ``weights_only=True``, so a model file can never run code; ``config_key`` hashes what a
training run depends on, so a run with other parameters or data never resumes an old one.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import torch

from .errors import GeonbError
from .outputs import atomic_path


def config_key(config: dict) -> str:
    """A short hash to name a checkpoint folder: other parameters or data never resume it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _tensor_bytes(state) -> int:
    """The bytes of the tensors in ``state``: about the size of its torch.save file."""
    if isinstance(state, torch.Tensor):
        return state.untyped_storage().nbytes()
    values = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else ()
    return sum(map(_tensor_bytes, values))


def save_checkpoint(path, state: dict) -> Path:
    """Save a checkpoint atomically; ``state`` holds tensors, numbers, strings, lists, dicts."""
    path = Path(path)
    with atomic_path(path, size=_tensor_bytes(state)) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from model files); a file torch
    cannot read that way is a GeonbError saying why, never torch's advice to load it unsafely."""
    path = Path(path)
    if not path.exists():
        raise GeonbError(f"{path}: no such model/checkpoint file. Train one first (03_train or `geonb train`).")
    if path.is_dir() or path.stat().st_size == 0:
        raise GeonbError(f"{path} is not a geonb model file: {'a folder' if path.is_dir() else 'empty'}. "
                         "Give a .pt written by geonb, or train again.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        reason = (f"it holds Python objects ({found[1]}), not only tensors, numbers and strings (refused unread: "
                  "they could run code)" if found else "torch cannot read it (a bare pickle or another format, refused "
                  "unread)")
    except Exception as exc:  # truncated, or not a torch file at all
        reason = f"torch cannot read it ({type(exc).__name__}; truncated, or another format)"
    raise GeonbError(f"{path} is not a geonb model file: {reason}. Give a .pt written by geonb, or train again.")

