"""`geonb info MODEL`: the model card kept in every model file, readable without Python."""
from __future__ import annotations

import torch

from geonb import __version__, cli
from geonb.modelfile import TrainedModel

from .test_errors import files, run_cli  # noqa: F401  (files: a fixture)
from .test_segment import _model


def test_geonb_info_prints_the_model_card_of_every_task(files, tmp_path, capsys):
    segnet = _model("segnet").save(tmp_path / "segnet.pt")
    capsys.readouterr()
    status = cli.main(["info", str(files["srcnn"]), str(files["dincae"]), str(segnet)])
    out = capsys.readouterr().out
    assert status == 0, out
    cards = [" ".join(card.split()) for card in out.split("\n\n")]  # columns aligned with any width
    assert len(cards) == 3
    srcnn, dincae, seg = cards
    assert "task downscale:" in srcnn and "arch srcnn: SRCNN" in srcnn
    assert "units target in m" in srcnn and "parameters" in srcnn
    assert "task clouds:" in dincae and "units field in degC" in dincae and "σ scale" in dincae
    assert "task segment:" in seg and "σ scale" not in seg
    for card in cards:
        assert f"by geonb {__version__}, torch {torch.__version__}" in card and " UTC" in card


def test_the_card_reports_the_best_validation_epoch(tmp_path):
    model = TrainedModel.load(_model("fcn").save(tmp_path / "m.pt"))
    model.info["history"] = [{"epoch": 1, "loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5},
                             {"epoch": 2, "loss": 0.8, "val_loss": 0.7, "val_accuracy": 0.6},
                             {"epoch": 3, "loss": 0.7, "val_loss": 0.75, "val_accuracy": 0.61}]
    card = dict(model.card())
    assert card["validation"].startswith("best at epoch 2 of 3: val_loss 0.7, val_accuracy 0.6 (")


def test_a_bad_model_file_is_one_line(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"not a model")
    status, err = run_cli(capsys, "info", tmp_path / "x.pt")
    assert status == 2 and "not" in err and "Traceback" not in err
