"""Figures of the GAN tasks (generate, translate): loss/accuracy curves, digit grids, confusion
matrices and photo / generated / true triptychs. PNG files, written atomically (``plots.save_figure``)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .plots import save_figure

LOSSES = ("g_loss", "loss", "d_loss", "adversarial")
ACCURACIES = ("d_acc", "d_acc_real", "d_acc_fake", "class_acc_real", "class_acc_fake", "recognised")


def gan_curves(history: list[dict], path, title: str = "", val_label: str = "val_loss") -> Path:
    """Left: the losses per epoch (generator, discriminator, L1…); right: the discriminator's
    accuracies and any share-like validation score, on [0, 1]."""
    epochs = [h["epoch"] for h in history]
    keys = {k for h in history for k in h}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for key in [k for k in LOSSES if k in keys] + [k for k in ("l1", "val_loss") if k in keys]:
        left.plot(epochs, [h.get(key, np.nan) for h in history], marker=".",
                  label=val_label if key == "val_loss" else key.replace("_", " "))
    left.set(xlabel="epoch", ylabel="loss (mean over the epoch's steps, log scale)", yscale="log",
             title=title or "losses")
    left.legend(fontsize=8)
    for key in [k for k in ACCURACIES if k in keys]:
        right.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=key.replace("_", " "))
    right.axhline(0.5, color="0.7", ls=":", lw=1)
    right.set(xlabel="epoch", ylabel="share", ylim=(-0.02, 1.02), title="discriminator accuracy (dotted: chance)")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no discriminator", ha="center", va="center", transform=right.transAxes)
    return save_figure(fig, path)


def digit_grids(grids: dict, path, title: str = "") -> Path:
    """``{label: (n_classes, n, 28, 28) images in [0, 1]}`` → one panel per label, a row per class."""
    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids) + 0.4, 3.2), squeeze=False)
    for ax, (name, grid) in zip(axes[0], grids.items()):
        c, n, h, w = grid.shape
        mosaic = np.ones((c * (h + 1), n * (w + 1)))
        for i in range(c):
            for j in range(n):
                mosaic[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = grid[i, j]
        ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([(h + 1) * i + h / 2 for i in range(c)], labels=[str(i) for i in range(c)], fontsize=7)
        ax.set_xticks([])
        ax.set_title(str(name), fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def confusion_plot(counts: np.ndarray, names, path, title: str = "", xlabel: str = "predicted",
                   ylabel: str = "true") -> Path:
    """Row-normalised confusion matrix with the shares written in the cells."""
    counts = np.asarray(counts, float)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(names), 0.8 + 0.55 * len(names)))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels=names, fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the row")
    return save_figure(fig, path)


def confusion_panels(matrices: dict, names, path, title: str = "") -> Path:
    """Several row-normalised confusion matrices side by side (one per method)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.4 * len(matrices), 4.0), squeeze=False)
    for k, (ax, (name, counts)) in enumerate(zip(axes[0], matrices.items())):
        counts = np.asarray(counts, float)
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), labels=names if k == 0 else [], fontsize=7)
        ax.set(xlabel="predicted class", ylabel="true class" if k == 0 else "", title=name)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def triptychs(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path, title: str = "",
              legend: dict | None = None) -> Path:
    """One row per tile: [(row label, [(panel title, (H, W, 3) uint8), …]), …]; ``legend``: name → colour
    (e.g. the class colours) drawn as a legend under the panels."""
    ncols = max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.7 * len(rows)), squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(panels):
                name, image = panels[c]
                ax.imshow(image, interpolation="nearest")
                ax.set_title(f"{name}" if r == 0 else "", fontsize=9)
        axes[r, 0].text(-0.04, 0.5, label, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.asarray(c) / 255 if np.ndim(c) else c, edgecolor="0.3", label=name)
                   for name, c in legend.items()]
        per_row = min(len(handles), 2 * ncols)  # about two entries per panel's width
        lines = -(-len(handles) // per_row)
        fig.legend(handles=handles, loc="lower center", ncol=per_row, fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.12 * lines / len(rows)))
    return save_figure(fig, path)
