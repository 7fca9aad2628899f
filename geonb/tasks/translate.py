"""The ``translate`` task: aerial photo → colour-coded land-cover map (pix2pix, pix2pix_l1).

Data: the Dubai aerial images and their hand-drawn maps (``geonb.aerial``: 7 locations × 9
parts). Whole locations go to train / val / test (``val_location``, ``test_location``), so no
test location is seen in training. Training tiles are random ``patch``×``patch`` crops of the
training locations, flipped and (``rotate``) turned at random; validation and test use a regular grid of tiles.
The L1 is weighted per pixel by its class's median-frequency weight^``class_balance``, and pix2pix keeps a
moving average of its generator (``ema``).

03 trains ``arch`` and then ``baseline`` (default ``pix2pix_l1``: the same U-Net with L1 only)
on the same tiles. 04 predicts each test image whole through the one predictor (fully
convolutional, tiled with a halo) and scores the pixels of the regular test grid: per-pixel L1
of the map colours (0–255), and class accuracy after decoding every generated colour to the
nearest class colour (unlabeled pixels left out), and the per-class IoU, beside the trained models a
per-pixel colour classifier (nearest class mean of the photo's RGB, fitted on the training locations).

Class probabilities (``translate_calibration``): from each pixel's squared colour distances to the class
colours, p_c ∝ exp(−d²_c / (2T)), T fitted on the validation location's maps at the end of 03 and kept in
the model file; 04 shows their calibration on the test location, ``geonb predict --probabilities`` writes them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .. import aerial, ganplots, methods
from ..errors import GeonbError
from ..io import write_netcdf, write_text
from ..losses import weighted_l1
from ..metrics.classification import confusion_scores
from ..modelfile import TrainedModel
from ..params import EMA, Param
from ..predict import Predictor
from ..registry import get_arch, list_archs
from ..report import Report
from ..training import run_accelerator
from . import Task
from . import translate_calibration as probabilities
from .segment.infer import as_written, check_probability_out

NORM = aerial.RANGE  # 0–255 ↔ [−1, 1] (tanh output), photos and maps alike; kept in the model file
VAL_TILES = 16  # validation tiles (regular grid of the val location), at most

PARAMS = aerial.task_params(
    "'dubai': the aerial photos and maps shipped with geonb (`geonb data dubai`) "
    "(or a folder with the same tile_N/images|masks layout)",
    epochs={"default": 60, "quick": 1},
    patience={"default": 20, "help": "stop after this many epochs without a lower validation L1 (class-weighted as "
                                     "in training)"},
    batch_size={"default": 4, "quick": 2},
    lr={"help": "learning rate; None: the arch's (pix2pix 2e-4 with Adam β1 0.5)"},
) + (
    Param("patch", int, 256, "tile size in px (a multiple of 2^depth)", quick=64, min=1, max=4096),
    Param("steps_per_epoch", int, 50, "batches per epoch", quick=2, min=1, max=100_000),
    Param("ngf", int, 16, "generator width (pix2pix: 64; 16 is CPU-sized)", quick=4, min=1, max=512),
    Param("ndf", int, 16, "PatchGAN width (pix2pix: 64; 16 is CPU-sized)", quick=4, min=1, max=512),
    Param("depth", int, 6, "U-Net levels; inputs padded to 2^depth (pix2pix's 256 U-Net: 8)", quick=4, min=1, max=10),
    Param("l1_weight", float, 100.0, "λ: weight of the L1 term against the adversarial term (pix2pix: 100)", min=0),
    Param("rotate", bool, True, "also turn each training tile by a random multiple of 90° (an aerial view has no "
          "preferred orientation; segment always does)"),
    EMA,
    Param("class_balance", float, 1.0, "α: each pixel's L1 weighted by its class's median-frequency weight^α "
          "(SegNet's balancing of the training pixels; unlabeled pixels 1); 0 = plain L1", min=0, max=2),
    Param("baseline", str, "pix2pix_l1", "another translate arch trained in 03 on the same tiles ('' = none)"),
    Param("n_examples", int, 4, "test tiles shown as triptychs in 04", None, min=0, max=100),
)


# ---------------------------------------------------------------- data
def _root(run):
    return None if run["data"] in ("", "dubai") else run["data"]


def _pairs(run, split: str) -> list[aerial.Pair]:
    if not 1 <= run["parts"] <= 9:
        raise GeonbError(f"parts={run['parts']}: use 1 to 9 image parts per location.")
    locations = aerial.split_locations(run["val_location"], run["test_location"])[split]
    parts = aerial.PARTS[:run["parts"]]
    return [p for loc in locations for p in aerial.load_location(loc, parts, _root(run))]


def _check_patch(run) -> int:
    patch, multiple = run["patch"], 2 ** run["depth"]
    if patch % multiple:
        raise GeonbError(f"patch={patch} is not a multiple of 2^depth = {multiple}: the U-Net halves the tile "
                         f"{run['depth']} times. Use e.g. patch={max(multiple, patch // multiple * multiple)}.")
    return patch


def data_prep(run) -> Report:
    """Read every photo and map (sizes and colours checked), split by location, show one pair per location."""
    split = aerial.split_locations(run["val_location"], run["test_location"])
    rows, thumbs = {}, []
    field = {}
    for name, locations in split.items():
        for loc in locations:
            pairs = aerial.load_location(loc, aerial.PARTS[:run["parts"]], _root(run))
            labels = np.concatenate([p.classes.ravel() for p in pairs])
            shares = np.bincount(labels[labels != aerial.IGNORE], minlength=len(aerial.NAMES)) / max(labels.size, 1)
            rows[f"tile_{loc}"] = {"split": name, "images": len(pairs),
                                   "size (px)": f"{pairs[0].classes.shape[0]}×{pairs[0].classes.shape[1]}",
                                   **{n: s for n, s in zip(aerial.NAMES, shares)},
                                   "unlabeled": float((labels == aerial.IGNORE).mean())}
            thumbs.append((f"tile_{loc} ({name})", [("photo", pairs[0].photo[::4, ::4]), ("map", pairs[0].map[::4, ::4])]))
            field[loc] = pairs[0].photo
    table = pd.DataFrame.from_dict(rows, orient="index")
    write_text(run.path("split.json"), json.dumps(split))
    write_netcdf(aerial.brightness_field(field), run.path("field.nc"))
    fig = ganplots.triptychs(thumbs, run.figure("01_pairs"), legend=aerial.legend(aerial.NAMES, aerial.COLOURS),
                             title="one photo and its map per location (¼ scale)")
    return Report(f"01 data: Dubai aerial, {len(rows)} locations × {run['parts']} parts",
                  f"Source: {aerial.SOURCE}. Split by whole location: train {split['train']}, val {split['val']}, "
                  f"test {split['test']}. Class shares per location below (the mix differs a lot).",
                  {"locations": table}, [fig])


# ---------------------------------------------------------------- 03
def _tiles_tensor(photos, maps):
    return torch.as_tensor(aerial.to_tensor_range(photos)), torch.as_tensor(aerial.to_tensor_range(maps))


def pixel_weights(classes: np.ndarray, class_weights: np.ndarray | None) -> torch.Tensor | None:
    """(N, H, W) class ids → (N, 3, H, W) L1 weights: the class's weight on each colour channel, 1 where
    unlabeled; None (plain L1) without class weights."""
    if class_weights is None:
        return None
    table = np.ones(256, np.float32)
    table[:len(class_weights)] = class_weights
    return torch.as_tensor(np.repeat(table[classes][:, None], 3, axis=1))


def train_one(run, arch_name: str, train_pairs, val_pairs, acc) -> tuple[Path, list[dict]]:
    arch = get_arch(arch_name)
    patch = _check_patch(run)
    arch_args = {"in_channels": 3, "out_channels": 3, "ngf": run["ngf"], "depth": run["depth"]}
    method = methods.build(arch, arch_args, lr=run["lr"] if arch_name == run["arch"] else arch.lr, seed=run["seed"],
                           device=acc, role_args={"discriminator": {"in_channels": 6, "ndf": run["ndf"]}},
                           adv_weight=1.0, content_args={"weight": run["l1_weight"]}, ema=run["ema"],
                           init=run["init"] if arch_name == run["arch"] else "")
    balance = run["class_balance"]
    class_weights = (aerial.median_frequency_weights([p.classes for p in train_pairs], len(aerial.NAMES)) ** balance
                     if balance else None)
    vp, vm, _ = aerial.grid_tiles(val_pairs, patch)
    pick = np.random.default_rng(run["seed"]).permutation(len(vp))[:VAL_TILES]
    val_classes = np.stack([aerial.decode(m, "a validation map") for m in vm[pick]])
    val_x, val_y = acc.to_device(_tiles_tensor(vp[pick], vm[pick]))
    val_w = pixel_weights(val_classes, class_weights)
    val_w = None if val_w is None else acc.to_device(val_w)

    def batches(epoch):
        rng = np.random.default_rng([run["seed"], epoch])  # the same tiles for every arch of the run
        for _ in range(run["steps_per_epoch"]):
            photos, maps, classes = aerial.random_tiles(train_pairs, patch, run["batch_size"], rng,
                                                        ("photo", "map", "classes"), rotate=run["rotate"])
            yield (*_tiles_tensor(photos, maps), pixel_weights(classes, class_weights))

    def validate():  # the training's own (weighted) L1 picks the epoch; the decoded classes are logged beside it
        pred = torch.cat([method.predict(x) for x in val_x.split(4)])
        scores = confusion_scores(val_classes, aerial.nearest_class(aerial.from_tensor_range(pred.float().cpu().numpy())),
                                  len(aerial.NAMES), ignore_index=aerial.IGNORE)
        return {"val_loss": float(weighted_l1(pred, val_y, val_w)), "val_mean_iou": scores["mean IoU"],
                "val_iou_building": float(scores["IoU"][aerial.NAMES.index("building")])}

    history = method.fit(batches, validate, run.checkpoint_dir(arch_name), epochs=run["epochs"],
                         patience=run["patience"], seed=run["seed"], desc=arch_name)
    model = TrainedModel("translate", arch_name, arch_args, method.weights(), {"photo": NORM, "map": NORM},
                         inputs={"classes": aerial.CLASSES, "patch": patch},
                         info={"trained_on": "Dubai aerial tile_" + ",".join(
                             str(k) for k in aerial.split_locations(run["val_location"], run["test_location"])["train"])
                             + f" ({run['parts']} parts each)", "history": history,
                             "ndf": run["ndf"], "l1_weight": run["l1_weight"], "class_balance": balance,
                             "ema": run["ema"] if "average" in method.nets else 0.0, "rotate": run["rotate"],
                             **({"class_weights": class_weights.tolist()} if balance else {})})
    val_maps = [translate_image(Predictor(model), p.photo, tile=2 * patch) for p in val_pairs]
    probabilities.fit_on_validation(model, val_maps, [p.classes for p in val_pairs], run["seed"])
    return model.save(run.model_path(arch_name)), history


def train(run) -> Report:
    """Train ``arch`` (and ``baseline``) on random tiles of the training locations; curves per arch."""
    train_pairs, val_pairs = _pairs(run, "train"), _pairs(run, "val")
    acc = run_accelerator(run)
    names = [run["arch"]]
    if run["baseline"] and run["baseline"] != run["arch"]:
        if get_arch(run["baseline"]).task != "translate":
            raise GeonbError(f"baseline={run['baseline']!r} is not a translate arch; use one of "
                             f"{', '.join(_archs())} or ''.")
        names.append(run["baseline"])
    figures, tables, paths = [], {}, []
    l1 = "class-weighted L1" if run["class_balance"] else "L1"
    for name in names:
        path, history = train_one(run, name, train_pairs, val_pairs, acc)
        paths.append(f"`{path}` (T = {TrainedModel.load(path).method_args['temperature']:.3g})")
        figures.append(ganplots.gan_curves(history, run.figure(f"03_curves_{name}"),
                                           title=f"{name}: losses (val = {l1} on val tiles, [−1, 1] units)",
                                           val_label=f"val {l1}"))
        tables[f"{name}: history (last epochs)"] = pd.DataFrame(history).set_index("epoch").tail(5)
    n = run["epochs"] * run["steps_per_epoch"] * run["batch_size"]
    moved = "flipped and turned" if run["rotate"] else "flipped"
    return Report(f"03 train {' + '.join(names)}",
                  f"{n} random {run['patch']}×{run['patch']} training tiles ({moved} at random) per arch, the same "
                  f"for each; U-Net ngf {run['ngf']}, depth {run['depth']}; PatchGAN ndf {run['ndf']}; "
                  f"λ = {run['l1_weight']:g}"
                  + (f"; L1 class-balanced, α = {run['class_balance']:g}" if run["class_balance"] else "")
                  + (f"; the generator {run['arch']} keeps is the moving average of its weights (ema {run['ema']:g})"
                     if run["ema"] and run["arch"] == "pix2pix" else "")
                  + f". Model files: {', '.join(paths)}; T: the temperature of the class "
                  "probabilities, fitted on the validation location's maps.", tables, figures)


# ---------------------------------------------------------------- prediction
def translate_image(pred: Predictor, photo: np.ndarray, tile: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 photo of any size → (H, W, 3) uint8 map, fully convolutional through the one
    predictor (tiles of ``tile`` px, a multiple of 2^depth, with the network's halo: tiled = one-shot)."""
    multiple = pred.multiple
    if tile is not None and tile % multiple:
        raise GeonbError(f"tile={tile} is not a multiple of {multiple} (2^depth of this U-Net): tiles must start on "
                         f"the network's pooling grid. Use e.g. --tile {max(multiple, tile // multiple * multiple)}.")
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise GeonbError(f"the photo has shape {photo.shape}; give an RGB image (height, width, 3).")
    norms = pred.model.norms  # as the model was trained
    x = pred.tensor(aerial.to_tensor_range(photo[None], norms["photo"]))
    return aerial.from_tensor_range(pred(x, tile=tile, batch=1)["mean"], norms["map"])[0]


# ---------------------------------------------------------------- 04
COLOUR_CLASSIFIER = "colour_classifier"


def colour_means(pairs: list[aerial.Pair]) -> np.ndarray:
    """The per-pixel colour classifier: mean photo RGB per class over the training locations' ``pairs``
    (every 4th pixel each way)."""
    photos = np.concatenate([p.photo[::4, ::4].reshape(-1, 3) for p in pairs])
    classes = np.concatenate([p.classes[::4, ::4].ravel() for p in pairs])
    return aerial.class_mean_colours(photos, classes)


def _scores(maps: np.ndarray, truth_maps: np.ndarray, truth_classes: np.ndarray) -> tuple[dict, np.ndarray]:
    from torchmetrics.functional import mean_absolute_error

    scores = confusion_scores(truth_classes, aerial.nearest_class(maps), len(aerial.NAMES), ignore_index=aerial.IGNORE)
    l1 = float(mean_absolute_error(*(torch.as_tensor(np.asarray(m, np.float64).ravel()) for m in (maps, truth_maps))))
    return {"class accuracy": scores["accuracy"], "balanced accuracy": scores["balanced accuracy"],
            "L1 (0-255)": l1, **probabilities.iou_columns(scores)}, scores["confusion"]


def grid_maps(models: dict[str, TrainedModel], pairs: list[aerial.Pair], patch: int,
              means: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Each image predicted whole by every model (and the colour classifier of class ``means``), cut to its
    regular grid of ``patch`` tiles: the tiles' photo, true map and classes, and each method's maps."""
    preds = {n: Predictor(m) for n, m in models.items()}
    tiles: dict[str, list] = {"photo": [], "truth": [], "classes": []}
    outputs: dict[str, list] = {n: [] for n in [*models, COLOUR_CLASSIFIER]}
    for pair in pairs:
        full = {n: translate_image(pr, pair.photo, tile=2 * patch) for n, pr in preds.items()}
        full[COLOUR_CLASSIFIER] = aerial.colourise(aerial.nearest_mean_classes(pair.photo, means))
        aerial.check_size(pair, patch)
        h, w = pair.classes.shape
        for i in range(0, h - patch + 1, patch):
            for j in range(0, w - patch + 1, patch):
                win = (slice(i, i + patch), slice(j, j + patch))
                for key, layer in (("photo", pair.photo), ("truth", pair.map), ("classes", pair.classes)):
                    tiles[key].append(layer[win])
                for n in outputs:
                    outputs[n].append(full[n][win])
    return {k: np.stack(v) for k, v in tiles.items()}, outputs


def score_maps(outputs: dict[str, list], truth: np.ndarray, classes: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """``grid_maps``' outputs scored on the same tiles: a row per method, and each method's confusion."""
    rows, matrices = {}, {}
    for n, maps in outputs.items():
        rows[n], matrices[n] = _scores(np.stack(maps), truth, classes)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    table["tiles"] = len(truth)
    return table, matrices


def error_maps(run) -> Report:
    """Every translate model of this run and the colour classifier on the test location's grid tiles."""
    patch = _check_patch(run)
    models = {n: p for n, p in run.trained().items()}
    if not models:
        raise GeonbError(f"no model in {run.path('models')}; run 03_train first.")
    loaded = {n: TrainedModel.load(p, task="translate") for n, p in models.items()}
    tiles, outputs = grid_maps(loaded, _pairs(run, "test"), patch, colour_means(_pairs(run, "train")))
    truth, classes = tiles["truth"], tiles["classes"]
    table, matrices = score_maps(outputs, truth, classes)
    write_text(run.metrics_path("test_location"), table.to_csv())
    main = run["arch"] if run["arch"] in loaded else next(iter(loaded))
    calibrated, _, reliability = probabilities.scores(
        loaded[main], np.stack(outputs[main]), classes, run.figure("04_reliability"),
        f"{main}: reliability of the class probabilities on tile_{run['test_location']} (held out)")
    k = min(run["n_examples"], len(truth))
    show = np.random.default_rng(run["seed"]).permutation(len(truth))[:k]
    rows_fig = [(f"test tile {t}", [("photo", tiles["photo"][t]), *((n, outputs[n][t]) for n in outputs),
                                    ("true map", truth[t])]) for t in show]
    trip = ganplots.triptychs(rows_fig, run.figure("04_triptychs"), legend=aerial.legend(aerial.NAMES, aerial.COLOURS),
                              title=f"held-out location tile_{run['test_location']}: photo, generated maps, true map")
    conf = ganplots.confusion_panels(matrices, list(aerial.NAMES), run.figure("04_confusion"),
                                     title="class confusion on the test tiles (rows: true class, unlabeled left out)")
    sel = show if len(show) else np.arange(0)
    truth_cls = np.where(classes[sel] == aerial.IGNORE, np.nan, classes[sel]).astype("float32")
    pred = xr.Dataset({"truth": (("sample", "y", "x"), truth_cls, {"long_name": "true class index"})},
                      coords={"lat": ("y", np.arange(patch)[::-1]), "lon": ("x", np.arange(patch))})
    for n in outputs:
        pred[n] = (("sample", "y", "x"), aerial.nearest_class(np.stack(outputs[n])[sel]).astype("float32"))
    pred.attrs.update(methods=",".join(outputs), classes=",".join(aerial.NAMES))
    write_netcdf(pred, run.prediction_path("test_location"))
    return Report(f"04 held-out location tile_{run['test_location']}: {len(truth)} grid tiles of {patch}×{patch} px",
                  "Each test image is predicted whole (fully convolutional, tiled with a halo) and scored on the "
                  "pixels of its regular tile grid. *class accuracy*: each generated colour decoded to the nearest "
                  "class colour, unlabeled pixels left out; *balanced*: the mean of the per-class accuracies; "
                  "*L1*: mean absolute difference of the map colours (0–255, all pixels). "
                  f"`{COLOUR_CLASSIFIER}`: every photo pixel → the class whose mean training-photo colour is nearest. "
                  f"*IoU*: per class, and their mean. *Calibration* of {main}'s class probabilities (p_c ∝ "
                  "exp(−d²_c / 2T), d_c the distance of the generated colour to class c's) on the same pixels, "
                  "before (T = 1) and after the temperature fitted on the validation location: expected calibration "
                  "error (15 bins), NLL, and the accuracy of the 20 % most uncertain pixels (1 − max probability) "
                  "against the rest; the reliability diagram plots it per confidence bin.",
                  {"test location": table, "calibration": calibrated}, [trip, conf, reliability])


# ---------------------------------------------------------------- command line: geonb predict
def predict_file(model: TrainedModel, args):
    """``geonb predict`` for a translate model: an aerial photo in (JPEG/PNG/TIFF/NetCDF), its colour map out
    in the format of ``--out`` (.png, .tif, .nc); ``--tile`` px per tile (a multiple of 2^depth).
    ``--probabilities``: also a band per class and the uncertainty (``translate_calibration``) in .nc/.zarr, or
    those bands alone in a GeoTIFF of a georeferenced input."""
    if args.probabilities:
        check_probability_out(args.out, args.input)
    aerial.refuse_lossy(args.out, "a class map")
    photo, tags, _ = aerial.read_photo(args.input, args.var)
    pred = Predictor(model)
    rgb = translate_image(pred, photo, tile=args.tile)
    attrs = {"title": f"geonb {model.arch} colour map of {args.input}",
             "source": f"geonb model {args.model} ({model.arch}, trained on {model.info.get('trained_on', '?')})",
             "classes": ", ".join(f"{n} {c}" for n, c in aerial.CLASSES.items())}
    h, w, _ = rgb.shape
    ds = xr.Dataset(
        {"map": (("y", "x", "rgb"), rgb, {"long_name": "generated colour map"}),
         "class": (("y", "x"), aerial.nearest_class(rgb), {"long_name": "nearest class",
                                                          "flag_values": " ".join(map(str, range(len(aerial.NAMES)))),
                                                          "flag_meanings": " ".join(aerial.NAMES)})},
        coords={"y": np.arange(h), "x": np.arange(w), "rgb": ["red", "green", "blue"]},
        attrs={**attrs, "image_variable": "map"})
    ds.encoding["tiff_tags"] = tags  # a GeoTIFF's georeferencing
    if args.probabilities:
        ds = as_written(probabilities.with_class_probabilities(ds, model, rgb), args.out, args.input, True)
    return ds


def _archs() -> list[str]:
    return [a.name for a in list_archs() if a.task == "translate"]


NOT_APPLICABLE = {
    "simulate": "Nothing to simulate: the hand-drawn maps are the targets; 03 cuts the tiles.",
    "scatter_plots": "No scatter plot: the outputs are class colours; 04's confusion matrix is their comparison.",
    "transects": "No transect: the maps are categorical and have no geographic coordinates here.",
}

TASK = Task(
    "translate", "aerial photo → land-cover colour map (Dubai aerial imagery)", PARAMS,
    {"data_prep": data_prep, "train": train, "error_maps": error_maps, **NOT_APPLICABLE},
    predict_file=predict_file, predict_options=("tile", "probabilities"),
)
