"""Progress that reaches the user wherever the work runs: the terminal and the notebook.

In a Jupyter kernel (a notebook run by JupyterLab, papermill or ``geonb run``) a cell's progress is one
output that updates in place — its lines, the latest epoch line of each training and its bars — so the
notebook shows it live and keeps it finished, never as red stderr text; the same lines go to the
terminal that started the kernel only (ipykernel copies whatever reaches the kernel's stderr file
descriptor into the notebook, so they are written to the copy of the terminal's descriptor it keeps).
Outside a kernel the lines go through ``tqdm.write``, so the bars stay intact.
"""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def _in_kernel() -> bool:
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return type(shell).__name__ == "ZMQInteractiveShell" and sys.__stderr__ is not None


def _terminal(line: str) -> None:
    """``line`` to the terminal that started the kernel, not into the notebook."""
    fd = getattr(sys.stderr, "_original_stdstream_copy", None) if getattr(sys.stderr, "_should_watch", False) \
        else None
    if fd is None:  # stderr not watched (e.g. a kernel started under pytest): the kernel's own stderr
        sys.__stderr__.write(line + "\n")
        sys.__stderr__.flush()
    else:
        os.write(fd, (line + "\n").encode())


class _LiveView:
    """The running cell's progress: one display, updated in place; a line with the key of an earlier one
    replaces it (a training's epoch line, a bar)."""

    def __init__(self):
        self.cell, self.handle, self.lines = None, None, {}

    def show(self, line: str, key: str) -> None:
        from IPython import get_ipython

        cell = get_ipython().execution_count
        if cell != self.cell:  # a new cell: a new view
            self.cell, self.handle, self.lines = cell, None, {}
        self.lines[key] = line
        data = {"text/plain": "\n".join(self.lines.values())}
        if self.handle is None:
            from IPython.display import display

            self.handle = display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)


_VIEW = _LiveView()


def say(line: str, key: str | None = None) -> None:
    """One progress line to the terminal and (in a kernel) the cell's live view; ``key``: the line it replaces
    there (e.g. the previous epoch of the same training)."""
    if _in_kernel():
        _terminal(line)
        _VIEW.show(line, key or line)
    else:
        tqdm.write(line, file=sys.stderr)


class _ViewFile:
    """Where tqdm writes a bar in a kernel: its line of the cell's live view."""

    def __init__(self, key: str):
        self.key = key

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            _VIEW.show(text, self.key)

    def flush(self) -> None:
        pass


def progress_bar(iterable=None, **options):
    """A tqdm bar: in a kernel a line of the cell's live view (kept finished in the saved notebook, where a
    widget would stay at 0/N), elsewhere tqdm's own."""
    if _in_kernel():
        from tqdm.std import tqdm as text_bar

        # a file without a terminal: tqdm would draw '#' bars 10 characters wide
        options = {"ascii": False, "ncols": 160, **options}
        return text_bar(iterable, file=_ViewFile(f"bar {options.get('desc', '')}"), **options)
    return tqdm(iterable, **options)


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
        f"{duration(seconds_per_epoch)}/epoch · ≤ {duration(left)} left", key=f"{desc} epoch")
