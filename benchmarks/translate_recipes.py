"""pix2pix recipes compared on the validation location first, then on the held-out one (issue 27, acceptance 2).

Each model file (NAME=PATH; a shipped name alone works too) is applied to every image of the validation
location and of the test location, predicted whole as 04 does, and scored on the same regular grid of
256-px tiles beside the per-pixel colour classifier: class accuracy, balanced accuracy, colour L1, mean and
per-class IoU. The recipe is chosen on the validation rows; the test rows are reported either way.

    OMP_NUM_THREADS=1 python benchmarks/translate_recipes.py out.md longer=runs/a/translate/models/pix2pix/model.pt \
        balanced=runs/b/translate/models/pix2pix/model.pt pix2pix_dubai
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deeplab_segment import markdown  # noqa: E402
from geonb import aerial  # noqa: E402
from geonb.io import write_text  # noqa: E402
from geonb.modelfile import TrainedModel  # noqa: E402
from geonb.tasks.translate import colour_means, grid_maps, score_maps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the Markdown table written")
    ap.add_argument("models", nargs="+", help="NAME=PATH of a translate model file, or a shipped model's name")
    ap.add_argument("--val-location", type=int, default=2)
    ap.add_argument("--test-location", type=int, default=3)
    ap.add_argument("--patch", type=int, default=256)
    args = ap.parse_args()
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        models[name] = TrainedModel.load(path or name, task="translate")
    split = aerial.split_locations(args.val_location, args.test_location)
    means = colour_means([p for loc in split["train"] for p in aerial.load_location(loc)])
    tables = {}
    for role in ("val", "test"):
        loc = split[role][0]
        tiles, outputs = grid_maps(models, aerial.load_location(loc), args.patch, means)
        table, _ = score_maps(outputs, tiles["truth"], tiles["classes"])
        tables[f"{role} (tile_{loc})"] = table
    table = pd.concat(tables, names=["location"]).reset_index(0)
    rows = [f"- `{name}`: {m.info.get('trained_on', '?')}; epochs run {len(m.info.get('history', []))}, "
            f"kept {min(m.info['history'], key=lambda h: h['val_loss'])['epoch'] if m.info.get('history') else '?'}; "
            f"class_balance {m.info.get('class_balance', 0)}, ema {m.info.get('ema', 0)}, rotate {m.info.get('rotate', '?')}"
            for name, m in models.items()]
    text = (f"# pix2pix recipes: validation tile_{args.val_location}, held out tile_{args.test_location}\n\n"
            + "\n".join(rows) + "\n\n" + markdown(table) + "\n\nCommand: `python benchmarks/translate_recipes.py "
            + " ".join([str(args.out), *args.models]) + "`\n")
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
