"""The segment task's notebook steps: data, training crops, training (and the calibration), held-out scores
beside per-pixel baselines with the calibration of the probabilities, per-class bars, class along a line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ... import aerial, ganplots, methods
from ...errors import GeonbError
from ...io import write_netcdf, write_text
from ...metrics.classification import confusion_scores
from ...modelfile import TrainedModel
from ...plots import loss_curves, save_figure
from ...predict import Predictor
from ...registry import get_arch
from ...report import Report
from ...training import run_accelerator
from .data import BANDS, NORM, VAL_TILES, _check_patch, _is_image, _names, _pairs, class_weights
from . import calibrate


def data_prep(run) -> Report:
    """Read every image and map (sizes and colours checked), split, class shares per split, the weights."""
    names = _names(run)
    rows, thumbs, field = {}, [], {}
    colours = aerial.scheme_colours(run["scheme"])
    patch = _check_patch(run)
    for split in BANDS:
        pairs = _pairs(run, split)
        for p in pairs:  # every image must hold a training crop (and a validation crop)
            aerial.check_size(p, patch)
        groups: dict[str, list] = {}
        for p in pairs:
            groups.setdefault(p.name.split("/")[0] if not _is_image(run) else split, []).append(p)
        for group, members in groups.items():
            labels = np.concatenate([p.classes.ravel() for p in members])
            shares = np.bincount(labels[labels != aerial.IGNORE], minlength=len(names))[:len(names)] / labels.size
            rows[group] = {"split": split, "images": len(members),
                           "size (px)": f"{members[0].classes.shape[0]}×{members[0].classes.shape[1]}",
                           **dict(zip(names, shares)), "no label": float((labels == aerial.IGNORE).mean())}
            photo = members[0].photo
            step = max(1, max(photo.shape[:2]) // 400)
            thumbs.append((f"{group} ({split})", [("photo", photo[::step, ::step]),
                                                  ("classes", aerial.colourise(members[0].classes, colours)[::step, ::step])]))
            field[len(field) + 1] = photo
        if split == "train":
            weights = class_weights(pairs, len(names))
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "location"
    balance = pd.DataFrame({"median-frequency weight": weights}, index=list(names))
    write_text(run.path("class_weights.json"), json.dumps(dict(zip(names, weights.tolist()))))
    write_text(run.path("split.json"), json.dumps({s: [k for k, r in rows.items() if r["split"] == s] for s in BANDS}))
    size = min(min(p.shape[0], p.shape[1]) for p in field.values())
    write_netcdf(aerial.brightness_field(field, min(size, 504)), run.path("field.nc"))
    fig = ganplots.triptychs(thumbs, run.figure("01_split"), legend=aerial.legend(names, colours),
                             title="the split: one image and its classes per location (grey: no label)")
    return Report(f"01 data: {len(rows)} {'bands' if _is_image(run) else 'locations'}, classes {', '.join(names)}",
                  f"Source: {aerial.SOURCE if not _is_image(run) else run['data']}. Split by whole "
                  f"{'row band' if _is_image(run) else 'location'} (no test pixel is seen in training). Class "
                  "shares of all pixels per location below; *no label* (grey and black) is left out of the loss "
                  "and every metric. Median-frequency weights w_c = median(f)/f_c from the training images.",
                  {"split and class shares": table, "class weights (training pixels)": balance}, [fig])


def simulate(run) -> Report:
    """What 03 trains on: random augmented crops (flips, 90° turns) and their class balance."""
    names, patch = _names(run), _check_patch(run)
    colours = aerial.scheme_colours(run["scheme"])
    rng = np.random.default_rng(run["seed"])
    photos, classes = aerial.random_tiles(_pairs(run, "train"), patch, 4 * run["batch_size"], rng,
                                          layers=("photo", "classes"), rotate=True)
    counts = np.bincount(classes[classes != aerial.IGNORE].ravel(), minlength=len(names))[:len(names)]
    table = pd.DataFrame({"share of crop pixels": counts / classes.size}, index=list(names))
    table.loc["no label"] = float((classes == aerial.IGNORE).mean())
    rows = [(f"crop {k}", [("photo", photos[k]), ("classes", aerial.colourise(classes[k], colours))])
            for k in range(min(4, len(photos)))]
    fig = ganplots.triptychs(rows, run.figure("02_crops"), legend=aerial.legend(names, colours),
                             title=f"random {patch}×{patch} training crops")
    return Report("02 training crops", f"{len(photos)} random crops of the training images, flipped and turned "
                  "by 90° at random, as 03 draws them (no simulation: the hand-drawn labels are the targets).",
                  {"class balance of the crops": table}, [fig])


def _batch(photos, classes):
    return torch.as_tensor(aerial.to_tensor_range(photos)), torch.as_tensor(classes.astype(np.int64))


def train(run) -> Report:
    """Train ``arch`` on random augmented crops of the training images; loss curves and val scores."""
    arch_name, names, patch = run["arch"], _names(run), _check_patch(run)
    train_pairs, val_pairs = _pairs(run, "train"), _pairs(run, "val")
    acc = run_accelerator(run)
    weights = class_weights(train_pairs, len(names)) if run["class_weights"] else None
    arch_args = {"in_channels": 3, "n_classes": len(names), "width": run["width"], "depth": run["depth"]}
    method = methods.build(get_arch(arch_name), arch_args, lr=run["lr"], seed=run["seed"], device=acc,
                           init=run["init"],
                           class_weights=None if weights is None else weights.tolist(), ignore_index=aerial.IGNORE)
    val_x, val_y = acc.to_device(_batch(*aerial.random_tiles(val_pairs, patch, VAL_TILES, np.random.default_rng(
        run["seed"]), layers=("photo", "classes"))))

    def batches(epoch):
        rng = np.random.default_rng([run["seed"], epoch])  # the same crops for every arch of the run
        for _ in range(run["steps_per_epoch"]):
            yield (*_batch(*aerial.random_tiles(train_pairs, patch, run["batch_size"], rng,
                                                layers=("photo", "classes"), rotate=True)), None)

    def validate():
        logits = torch.cat([method.predict(x) for x in val_x.split(4)])
        scores = confusion_scores(val_y.cpu().numpy(), logits.argmax(1).cpu().numpy(), len(names),
                                  ignore_index=aerial.IGNORE)
        return {"val_loss": float(method.loss(logits, val_y, None)), "val_accuracy": scores["accuracy"],
                "val_mean_IoU": scores["mean IoU"]}

    history = method.fit(batches, validate, run.checkpoint_dir(arch_name), epochs=run["epochs"],
                         patience=run["patience"], seed=run["seed"], desc=arch_name)
    split = "rows 0–60 % of " + run["data"] if _is_image(run) else "Dubai aerial tile_" + ",".join(
        str(k) for k in aerial.split_locations(run["val_location"], run["test_location"])["train"])
    colours = aerial.scheme_colours(run["scheme"])
    model = TrainedModel("segment", arch_name, arch_args, method.weights(), {"photo": NORM},
                         inputs={"classes": list(names), "colours": ["#%02X%02X%02X" % tuple(c) for c in colours],
                                 "scheme": run["scheme"], "patch": patch},
                         info={"trained_on": split, "history": history,
                               "class_weights": None if weights is None else weights.tolist()})
    model.method_args["tta"] = run["tta"]
    temperature, alpha = calibrate.fit_on_validation(model, val_pairs, run["seed"])
    path = model.save(run.model_path(arch_name))
    fig = loss_curves(history, run.figure(f"03_curves_{arch_name}"),
                      title=f"{arch_name}: cross-entropy (val: {VAL_TILES} fixed val crops)")
    n = run["epochs"] * run["steps_per_epoch"] * run["batch_size"]
    wtext = ", ".join(f"{k} {w:.2f}" for k, w in zip(names, weights)) if weights is not None else "none"
    return Report(f"03 train {arch_name}",
                  f"Up to {n} random {patch}×{patch} crops (flips, 90° turns); width {run['width']}, depth "
                  f"{run['depth']}; class weights: {wtext}. Early stopping on the validation loss; the best "
                  f"epoch's weights are kept. " + ("Test-time augmentation: every prediction averages the probabilities "
                  "of the 8 flips and 90° turns. " if run["tta"] else "") + "Calibration fitted on the validation images, kept "
                  "in the model file: " + (f"the class weights' prior divided out, p / w^α with α = {alpha:.3g} (the "
                  "α of least NLL among those that keep the validation mean IoU), then " if alpha else "") +
                  f"temperature T = {temperature:.3g} (probabilities ∝ p^(1/T), NLL minimised; T never moves the "
                  f"class map). Model file: `{path}`.",
                  {f"{arch_name}: history (last epochs)": pd.DataFrame(history).set_index("epoch").tail(5)}, [fig])


RANDOM_FOREST, NEAREST_MEAN, MAJORITY = "random_forest_rgb", "nearest_mean_rgb", "majority_class"
FOREST_PROBABILITIES = f"{RANDOM_FOREST} (probabilities)"  # its row in 04's calibration table


def forest_classifier(rgb: np.ndarray, classes: np.ndarray, n: int, *, pixels: int, seed: int):
    """A random forest (50 trees, leaves of 5 or more pixels) fitted on the RGB of ``pixels`` labelled pixels
    drawn at random from (N, 3) ``rgb`` and (N,) ``classes`` → a function (H, W, 3) uint8 → (n, H, W) class
    probabilities: the mean over the trees of their leaf's class shares (sklearn's ``predict_proba``; 0 for a
    class no tree's leaf holds, and for a class absent from the sample). Its class map is their argmax, as
    the forest's own ``predict``."""
    from sklearn.ensemble import RandomForestClassifier

    labelled = np.flatnonzero(classes != aerial.IGNORE)
    pick = np.random.default_rng(seed).choice(labelled, min(pixels, len(labelled)), replace=False)
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, n_jobs=1, random_state=seed)
    forest.fit(rgb[pick].astype(np.float32), classes[pick])

    def probabilities(photo):
        out = np.zeros((n, photo.shape[0] * photo.shape[1]), np.float32)
        out[forest.classes_] = forest.predict_proba(photo.reshape(-1, 3).astype(np.float32)).T
        return out.reshape(n, *photo.shape[:2])

    return probabilities


def _baselines(run, n: int):
    """Per-pixel classifiers fitted on RGB of training pixels: the random forest's class probabilities
    (``forest_classifier``: a function (H, W, 3) uint8 → (n, H, W)), and name → function (H, W, 3) uint8 →
    (H, W) class ids of the nearest class mean and the majority class."""
    pairs = _pairs(run, "train")
    rgb = np.concatenate([p.photo.reshape(-1, 3) for p in pairs])
    cls = np.concatenate([p.classes.ravel() for p in pairs])
    labelled = np.flatnonzero(cls != aerial.IGNORE)
    forest = forest_classifier(rgb, cls, n, pixels=run["baseline_pixels"], seed=run["seed"])
    means = aerial.class_mean_colours(rgb[labelled[::10]], cls[labelled[::10]], n)
    majority = int(np.bincount(cls[labelled], minlength=n).argmax())
    return forest, {NEAREST_MEAN: lambda photo: aerial.nearest_mean_classes(photo, means),
                    MAJORITY: lambda photo: np.full(photo.shape[:2], majority, np.uint8)}


def error_panel(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB error map: right pixels white, wrong ones red, no-label pixels grey."""
    out = np.full((*truth.shape, 3), 255, np.uint8)
    out[pred != truth] = aerial.ERROR_RED
    out[truth == aerial.IGNORE] = aerial.UNLABELED_COLOURS[0]
    return out


def error_maps(run) -> Report:
    """Every segment model of this run and the per-pixel baselines on the test images, whole."""
    names = _names(run)
    n, colours = len(names), aerial.scheme_colours(run["scheme"])
    models = run.trained()
    if not models:
        raise GeonbError(f"no model in {run.path('models')}; run 03_train first.")
    preds = {k: Predictor(TrainedModel.load(p, task="segment")) for k, p in models.items()}
    for k, pr in preds.items():
        if pr.model.inputs.get("classes") != list(names):
            raise GeonbError(f"model {k} ({models[k]}) predicts {pr.model.inputs.get('classes')}, this run's scheme "
                             f"is {list(names)}; use another run_dir or retrain it (03).")
    test_pairs = _pairs(run, "test")
    probs = {k: calibrate.probabilities(pr, test_pairs) for k, pr in preds.items()}
    outputs = {k: [p.argmax(0).astype(np.uint8) for p in ps] for k, ps in probs.items()}
    forest, others = _baselines(run, n)
    forest_probs = [forest(p.photo) for p in test_pairs]
    outputs[RANDOM_FOREST] = [p.argmax(0).astype(np.uint8) for p in forest_probs]
    outputs.update({k: [f(p.photo) for p in test_pairs] for k, f in others.items()})
    truth = np.concatenate([p.classes.ravel() for p in test_pairs])
    scores = {k: confusion_scores(truth, np.concatenate([o.ravel() for o in outs]), n, ignore_index=aerial.IGNORE)
              for k, outs in outputs.items()}
    table = pd.DataFrame({k: {"overall accuracy": s["accuracy"], "mean IoU": s["mean IoU"],
                              **{f"IoU {c}": v for c, v in zip(names, s["IoU"])}} for k, s in scores.items()}).T
    table.index.name = "method"
    table["test pixels"] = int((truth != aerial.IGNORE).sum())
    write_text(run.metrics_path("test"), table.to_csv())
    per_class = pd.concat({k: pd.DataFrame({"precision": s["precision"], "recall": s["recall"], "IoU": s["IoU"]},
                                           index=list(names)) for k, s in scores.items()}, names=["method", "class"])
    write_text(run.metrics_path("per_class"), per_class.to_csv())
    best = max(preds, key=lambda k: scores[k]["mean IoU"])
    cm = scores[best]["confusion"]
    counts = pd.DataFrame(cm, index=[f"true {c}" for c in names], columns=[f"pred {c}" for c in names])
    shares = counts.div(counts.sum(axis=1).clip(lower=1), axis=0)
    conf = ganplots.confusion_panels({k: scores[k]["confusion"] for k in [*preds, RANDOM_FOREST, MAJORITY]},
                                     list(names), run.figure("04_confusion"),
                                     title="confusion on the test pixels, row-normalised (rows: true class)")
    k = min(run["n_examples"], len(test_pairs))
    rows = []
    for i in range(k):
        p = test_pairs[i]
        rows.append((p.name, [("image", p.photo), ("labels", aerial.colourise(p.classes, colours)),
                              (f"{best}", aerial.colourise(outputs[best][i], colours)),
                              (f"{best} errors", error_panel(p.classes, outputs[best][i])),
                              (f"{best} uncertainty", calibrate.uncertainty_panel(probs[best][i])),
                              (RANDOM_FOREST, aerial.colourise(outputs[RANDOM_FOREST][i], colours)),
                              (f"{RANDOM_FOREST} errors", error_panel(p.classes, outputs[RANDOM_FOREST][i])),
                              (f"{RANDOM_FOREST} uncertainty", calibrate.uncertainty_panel(forest_probs[i]))]))
    maps = ganplots.triptychs(rows, run.figure("04_error_maps"), legend=aerial.legend(names, colours, errors=True),
                              title="test images: labels, predictions, errors (red: wrong; grey: no label) and "
                                    "uncertainty (1 − max probability: dark sure, bright unsure)")
    _write_predictions(run, test_pairs, outputs, names)
    calibrated, bins = calibrate.scores(probs[best], test_pairs, preds[best].model.method_args,
                                        {FOREST_PROBABILITIES: forest_probs})
    write_text(run.metrics_path("calibration"), calibrated.to_csv())
    diagram = calibrate.reliability_figure(bins, run.figure("04_reliability"),
                                           f"{best} and {RANDOM_FOREST}: reliability on the test pixels")
    where = "the held-out " + ("band" if _is_image(run) else f"location tile_{run['test_location']}")
    return Report(f"04 {where}: {len(test_pairs)} images, {int((truth != aerial.IGNORE).sum())} labelled px",
                  "Each test image is predicted whole through the one predictor (tiles with a cropped halo). "
                  "Scores by torchmetrics on the labelled pixels only (no-label pixels left out): overall accuracy "
                  "= correct / labelled pixels; IoU_c = TP/(TP+FP+FN); mean IoU over the classes in the test truth. "
                  f"Baselines on the same pixels: `{RANDOM_FOREST}` (50 trees on the RGB of "
                  f"{run['baseline_pixels']} training pixels), `{NEAREST_MEAN}` (nearest class-mean colour), "
                  f"`{MAJORITY}`. Confusion matrices of the best model (`{best}`, by mean IoU) below. Calibration "
                  f"of its class probabilities before and after the calibration fitted on the validation images "
                  "(the class weights' prior divided out, α, and the temperature T; T = 1: none stored), beside the "
                  "random forest's (the mean over its trees of their leaf's class shares): expected "
                  "calibration error (15 confidence bins, torchmetrics), NLL, and the "
                  "accuracy on the 20 % labelled pixels of highest uncertainty (1 − max probability) against the rest.",
                  {"test scores": table, f"{best}: confusion (counts)": counts,
                   f"{best}: confusion (row-normalised)": shares, f"{best}: calibration": calibrated},
                  [maps, conf, diagram])


def _write_predictions(run, pairs, outputs, names) -> None:
    """04's predictions for ``geonb.explore``: the top-left common window of each test image."""
    h, w = min(p.classes.shape[0] for p in pairs), min(p.classes.shape[1] for p in pairs)

    def cut(c):
        return np.where(c[:h, :w] == aerial.IGNORE, np.nan, c[:h, :w]).astype("float32")

    ds = xr.Dataset({"truth": (("sample", "y", "x"), np.stack([cut(p.classes) for p in pairs]),
                               {"long_name": "true class id"})},
                    coords={"lat": ("y", np.arange(h)[::-1]), "lon": ("x", np.arange(w))})
    for k, outs in outputs.items():
        ds[k] = (("sample", "y", "x"), np.stack([cut(o) for o in outs]), {"long_name": f"{k} class id"})
    ds.attrs.update(methods=",".join(outputs), classes=",".join(names))
    write_netcdf(ds, run.prediction_path("test"))


def scatter_plots(run) -> Report:
    """Per-class precision, recall and IoU of every method (from 04) as bars."""
    import matplotlib.pyplot as plt

    run.require("error_maps")
    table = pd.read_csv(run.metrics_path("per_class"), index_col=[0, 1])
    methods_ = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    for ax, score in zip(axes, ("precision", "recall", "IoU")):
        wide = table[score].unstack(0)[methods_]
        wide.plot.bar(ax=ax, width=0.8, legend=score == "IoU", rot=30)
        ax.set(title=score, ylim=(0, 1), xlabel="")
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle("per-class scores on the test pixels")
    return Report("05 per-class precision, recall and IoU",
                  "Precision: the share of pixels predicted as a class that are that class; recall: the share of "
                  "a class's pixels found; IoU both at once. Test pixels of 04.",
                  {"per-class scores": table.unstack(1).round(3)}, [save_figure(fig, run.figure("05_per_class"))])


def transects(run) -> Report:
    """The class along a line across the first test image: truth, each model, the baselines."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    run.require("error_maps")
    ds = xr.load_dataset(run.prediction_path("test"))
    h, w = ds.sizes["y"], ds.sizes["x"]
    start = run["transect_start"] or [h // 2, 0]
    end = run["transect_end"] or [h // 2, w - 1]
    for name, point in (("transect_start", start), ("transect_end", end)):
        if len(point) != 2 or not (0 <= point[0] < h and 0 <= point[1] < w):
            raise GeonbError(f"{name}={point}: give [row, column] inside the {h}×{w} px test image.")
    n = int(max(abs(end[0] - start[0]), abs(end[1] - start[1]))) + 1
    r = np.round(np.linspace(start[0], end[0], n)).astype(int)
    c = np.round(np.linspace(start[1], end[1], n)).astype(int)
    names = ds.attrs["classes"].split(",")
    layers = ["truth", *ds.attrs["methods"].split(",")]
    strips = np.stack([ds[k].values[0][r, c] for k in layers])
    colours = np.vstack([aerial.scheme_colours(run["scheme"]), aerial.UNLABELED_COLOURS[:1]]) / 255
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(layers) + 1.2))
    ax.imshow(np.where(np.isnan(strips), len(names), strips), aspect="auto", interpolation="nearest",
              cmap=ListedColormap(colours), vmin=-0.5, vmax=len(names) + 0.5)
    ax.set_yticks(range(len(layers)), labels=layers, fontsize=8)
    ax.set(xlabel=f"px along the line from (row, col) {tuple(start)} to {tuple(end)}",
           title="class along the line (" + ", ".join(names) + "; grey: no label)")
    labelled = ~np.isnan(strips[0])
    agree = {k: float((strips[i][labelled] == strips[0][labelled]).mean()) for i, k in enumerate(layers) if i}
    return Report("06 class along a line across the first test image",
                  "Each row is one method's class at each pixel of the line (class colours); the share of labelled "
                  "line pixels where it agrees with the truth below.",
                  {"agreement with the truth along the line": pd.DataFrame({"agreement": agree})},
                  [save_figure(fig, run.figure("06_transect"))])
