"""Progress lines that reach the user wherever the work runs: the terminal and the notebook.

In a Jupyter kernel (a notebook run by JupyterLab, papermill or ``geonb run``) the tqdm bars
go into the notebook only; a line written to the kernel's own stderr (``sys.__stderr__``)
reaches the terminal that started it, and ipykernel copies that file descriptor into the
notebook too. Outside a kernel the line goes through ``tqdm.write`` so bars stay intact.
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def _in_kernel() -> bool:
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return type(shell).__name__ == "ZMQInteractiveShell" and sys.__stderr__ is not None


def say(line: str) -> None:
    """One progress line to the terminal and (in a kernel) the notebook."""
    if _in_kernel():
        sys.__stderr__.write(line + "\n")
        sys.__stderr__.flush()
        if not getattr(sys.stderr, "_should_watch", False):  # the kernel does not copy its stderr into the notebook
            print(line, flush=True)
    else:
        tqdm.write(line, file=sys.stderr)


def duration(seconds: float) -> str:
    """0.46 s, 12 s, 3.4 min, 1.2 h."""
    if seconds < 9.5:
        return f"{seconds:.2g} s"  # "0 s per epoch" says nothing
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def print_rows(rows, indent: str = "") -> None:
    """(name, value) rows as an aligned two-column listing (``geonb doctor``, ``geonb info``)."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{indent}{name:<{width}}  {value}")


def bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / max(total, 1))
    return "█" * filled + "·" * (width - filled)


def epoch_line(desc: str, epoch: int, epochs: int, record: dict, seconds_per_epoch: float) -> None:
    """``[geonb] unet epoch 3/100 ███····· loss 0.12 val_loss 0.10 · 4 s/epoch · ≤ 6.5 min left``."""
    values = " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch" and isinstance(v, float))
    left = seconds_per_epoch * (epochs - epoch)
    say(f"[geonb] {desc} epoch {epoch}/{epochs} {bar(epoch, epochs)} {values} · "
        f"{duration(seconds_per_epoch)}/epoch · ≤ {duration(left)} left")
