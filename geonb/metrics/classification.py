"""Scores of class maps, from torchmetrics: confusion matrix, accuracy, balanced accuracy, per-class
precision, recall and IoU. Pixels whose truth is ``ignore_index`` (no label) count nowhere."""
from __future__ import annotations

import numpy as np
import torch


def _tensors(truth, pred, n: int, ignore_index: int | None):
    t = torch.as_tensor(np.asarray(truth).ravel().astype(np.int64))
    p = torch.as_tensor(np.asarray(pred).ravel().astype(np.int64))
    if ignore_index is not None:
        p = torch.where(p == ignore_index, (t + 1) % n, p)  # a pixel left unpredicted counts as wrong
    return p, t, {"num_classes": n, "ignore_index": ignore_index}


def confusion(truth, pred, n: int, ignore_index: int | None = None) -> np.ndarray:
    """Counts [true class, predicted class] (int64)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    p, t, kw = _tensors(truth, pred, n, ignore_index)
    return multiclass_confusion_matrix(p, t, **kw).numpy()


def confusion_scores(truth, pred, n: int, ignore_index: int | None = None) -> dict:
    """Confusion counts [true, predicted], overall accuracy, per-class precision, recall and IoU, and the
    means over the classes present in the truth: mean IoU and balanced accuracy (mean recall)."""
    from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_jaccard_index,
                                                        multiclass_precision, multiclass_recall)

    p, t, kw = _tensors(truth, pred, n, ignore_index)
    cm = confusion(truth, pred, n, ignore_index)
    iou = multiclass_jaccard_index(p, t, average=None, **kw).numpy()
    recall = multiclass_recall(p, t, average=None, **kw).numpy()
    present = cm.sum(1) > 0
    mean = (lambda v: float(v[present].mean())) if present.any() else (lambda v: float("nan"))
    return {"confusion": cm, "accuracy": float(multiclass_accuracy(p, t, average="micro", **kw)),
            "balanced accuracy": mean(recall), "mean IoU": mean(iou), "IoU": iou,
            "precision": multiclass_precision(p, t, average=None, **kw).numpy(), "recall": recall}
