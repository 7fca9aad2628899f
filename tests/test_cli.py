import subprocess
import sys

import pytest

from geonb.cli import main, parse_value
from geonb.registry import list_archs


def test_archs_lists_every_architecture_with_its_task(capsys):
    assert main(["archs"]) == 0
    out = capsys.readouterr().out
    for arch in list_archs():
        assert arch.name in out and arch.task in out
    assert {"unet", "ctxgan", "srcnn", "rsrcnn", "srgan", "dincae"} <= {a.name for a in list_archs()}


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "geonb", "archs"], capture_output=True, text=True, check=True).stdout
    assert "unet" in out


def test_run_refuses_unknown_parameter(capsys, tmp_path):
    assert main(["run", "--quick", "--run-dir", str(tmp_path), "-p", "epoch", "3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'epoch'" in err and "epochs" in err  # names the mistake and the valid names
    assert not (tmp_path / "notebooks").exists()  # refused before any notebook ran


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("True", True), ("[1, 2]", [1, 2]), ("srgan", "srgan")])
def test_parameter_values_are_parsed(text, value):
    assert parse_value(text) == value


def _untrained_inpaint_model(path):
    import torch

    from geonb.modelfile import TrainedModel
    from geonb.normalise import Normaliser
    from geonb.registry import get_arch

    torch.manual_seed(0)
    net = get_arch("unet").build("generator", in_channels=2)
    model = TrainedModel("inpaint", "unet", {"in_channels": 2}, [net.state_dict()], {"field": Normaliser(18.0, 3.0)},
                         method_args={"residual": False}, inputs={"variable": "sst", "prefill": "zero"})
    return model.save(path)


def test_predict_with_an_inpainting_model_fills_sea_gaps_only(tmp_path, capsys):
    import numpy as np
    import xarray as xr

    from geonb import synthetic_sst
    from geonb.modelfile import TrainedModel
    from geonb.predict import Predictor
    from geonb.tasks.inpaint.infer import fill_holes

    model = _untrained_inpaint_model(tmp_path / "m.pt")
    truth = synthetic_sst(n_time=2, ny=36, nx=44, seed=2)  # not a multiple of the U-Net's pooling
    sea = np.isfinite(truth.values[0])
    gappy = truth.copy()
    gappy[:, 10:20, 20:30] = np.nan
    src = tmp_path / "in.nc"
    xr.Dataset({"sst": gappy, "mask": (("lat", "lon"), sea.astype("int8"))}).to_netcdf(src)
    out = tmp_path / "out.nc"
    assert main(["predict", "--model", str(model), "--input", str(src), "--var", "sst", "--mask-var", "mask",
                 "--out", str(out)]) == 0
    filled = xr.open_dataset(out).sst.values
    observed = np.isfinite(gappy.values)
    hidden = ~observed & sea[None]
    assert hidden.sum() == 2 * 10 * 10
    np.testing.assert_array_equal(filled[observed], gappy.values[observed])  # observations kept as given
    assert np.isnan(filled[:, ~sea]).all()  # land is not a hole
    expected = fill_holes(Predictor(TrainedModel.load(model)), gappy.values, hidden)
    np.testing.assert_allclose(filled[hidden], expected[hidden], rtol=1e-6)
    capsys.readouterr()
    # without the land/sea mask every land cell would be a hole: refused, nothing written
    assert main(["predict", "--model", str(model), "--input", str(src), "--var", "sst", "--out",
                 str(tmp_path / "no.nc")]) == 2
    assert "--mask-var" in capsys.readouterr().err and not (tmp_path / "no.nc").exists()
    # the input is never overwritten
    assert main(["predict", "--model", str(model), "--input", str(src), "--var", "sst", "--mask-var", "mask",
                 "--out", str(src)]) == 2
    assert "never overwrites its inputs" in capsys.readouterr().err
