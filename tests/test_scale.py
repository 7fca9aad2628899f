"""Training on the hardware: data-parallel (torchrun/DDP, gloo on CPU), bf16 autocast, DataLoader
workers, the device check and the up-front duration estimate."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from geonb import Run, methods
from geonb.errors import GeonbError
from geonb.losses import DEEPBEDMAP_WEIGHTS
from geonb.registry import get_arch
from geonb.training import Accelerator, accelerator, pick_device

GLOBAL_BATCH = 4
CONTENT_WEIGHTS = {k: v for k, v in DEEPBEDMAP_WEIGHTS.items() if k != "w_adversarial"}


def _data():
    g = torch.Generator().manual_seed(0)
    hr = torch.randn(16, 1, 16, 16, generator=g).cumsum(-1).cumsum(-2) / 8  # smooth fields
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    return lr, hr


def _train(ckpt, arch="srcnn", epochs=2, acc=None, arch_args=None):
    lr, hr = _data()
    method = methods.build(get_arch(arch), {"factor": 4, "cond_res": (), **(arch_args or {})}, lr=1e-3, seed=0,
                           device=acc or Accelerator(torch.device("cpu")), adv_weight=0.1,
                           content_args={"factor": 4, "units": 1.0, **CONTENT_WEIGHTS})

    def batches(epoch):
        order = torch.randperm(len(lr), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(lr), GLOBAL_BATCH):
            idx = order[i:i + GLOBAL_BATCH]
            yield (lr[idx], []), hr[idx], None

    def validate():
        return {"val_loss": float(((method.predict((lr, [])) - hr) ** 2).mean())}

    history = method.fit(batches, validate, ckpt, epochs=epochs, patience=10, seed=0, desc=arch)
    return method, history


def _ddp_worker(rank, world, store, out, arch, arch_args):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        method, history = _train(out / "ckpt", arch, arch_args=arch_args)
        if rank == 0:
            torch.save({"weights": method.nets["generator"].state_dict(), "history": history}, out / "ddp.pt")
    finally:
        dist.destroy_process_group()


def _ddp(tmp_path, arch, arch_args=None):
    mp.spawn(_ddp_worker, args=(2, tmp_path / "store", tmp_path, arch, arch_args), nprocs=2, join=True)
    return torch.load(tmp_path / "ddp.pt", weights_only=True)


def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    """DDP (gloo, 2 CPU processes, 2 samples each) = one process on the 4-sample batch, to float tolerance."""
    ddp = _ddp(tmp_path, "srcnn")
    single, history = _train(tmp_path / "single")
    weights = single.nets["generator"].state_dict()
    assert ddp["weights"].keys() == weights.keys()  # no DDP "module." prefix in what is saved
    initial = methods.build(get_arch("srcnn"), {"factor": 4, "cond_res": ()}, lr=1e-3, seed=0, device="cpu")
    moved = max(float((w - w0).abs().max()) for w, w0 in zip(weights.values(), initial.generator.state_dict().values()))
    assert moved > 1e-3  # training moved the weights, so equality below means something
    for name, w in weights.items():
        torch.testing.assert_close(ddp["weights"][name], w, rtol=1e-4, atol=1e-6, msg=name)
    # the logged train loss is the global batch's (averaged over processes)
    assert ddp["history"][-1]["loss"] == pytest.approx(history[-1]["loss"], rel=1e-4)


def test_gan_trains_under_ddp(tmp_path):
    """A GAN step (discriminator, then generator with the discriminator frozen) runs data-parallel."""
    out = _ddp(tmp_path, "srgan", {"n_blocks": 1, "nf": 8})
    assert all(torch.isfinite(w).all() for w in out["weights"].values())
    assert np.isfinite(out["history"][-1]["adversarial"])


def _acgan_worker(rank, world, store, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        m = methods.build(get_arch("acgan"), {"latent": 8, "nf": 4}, lr=1e-2, seed=0, device="cpu", ema=0.9)
        g = torch.Generator().manual_seed(rank)  # each process its own slice: its own BatchNorm statistics
        for _ in range(3):
            m.train_step((torch.rand(4, 1, 28, 28, generator=g) * 2 - 1, torch.arange(4), None))
        torch.save(m.generator.state_dict(), out / f"average_{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_acgan_moving_average_is_the_same_in_every_process(tmp_path):
    """Each process validates its own copy of the average: copies that differ would stop them at different epochs."""
    mp.spawn(_acgan_worker, args=(2, tmp_path / "store", tmp_path), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"average_{r}.pt", weights_only=True) for r in (0, 1))
    assert float(a["body.0.running_var"].std()) > 0  # the statistics moved, so equality means something
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_gan_steps_under_bf16_autocast_keep_float32_weights_and_learn(tmp_path):
    """bf16 autocast (CPU supports it): forward passes in bf16, weights, gradients and optimiser in float32."""
    acc = Accelerator(torch.device("cpu"), amp=True)
    conv_dtypes = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: conv_dtypes.add(o.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        method, history = _train(tmp_path / "amp", "srgan", epochs=2, acc=acc, arch_args={"n_blocks": 1, "nf": 8})
    finally:
        hook.remove()
    assert torch.bfloat16 in conv_dtypes  # autocast was really on in the training steps
    for net in method.nets.values():
        assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(np.isfinite(v) for h in history for v in h.values())
    _, plain = _train(tmp_path / "fp32", "srgan", epochs=2, arch_args={"n_blocks": 1, "nf": 8})
    assert history[-1]["val_loss"] == pytest.approx(plain[-1]["val_loss"], rel=0.05)  # bf16 stays close to fp32


def test_dataloader_workers_give_the_same_training(tmp_path):
    """Batches made by 2 DataLoader worker processes arrive in the same order: the same trained weights."""
    one, _ = _train(tmp_path / "w0")
    two, _ = _train(tmp_path / "w2", acc=Accelerator(torch.device("cpu"), workers=2))
    for a, b in zip(one.generator.state_dict().values(), two.generator.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", ["tpu", "cuda:7", "banana"])
def test_unusable_device_is_an_error_not_a_silent_cpu(device):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(GeonbError, match="device"):
        pick_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_without_gpu_says_so():
    with pytest.raises(GeonbError, match="no CUDA GPU"):
        accelerator("cuda")
    with pytest.raises(GeonbError, match="amp"):
        accelerator("cpu", amp="fp8")
    assert accelerator("cpu").amp is False  # auto: float32 on a CPU for a family not measured under bf16


def test_amp_auto_is_bf16_on_a_cpu_with_native_bf16_for_the_families_measured_under_it(monkeypatch, tmp_path):
    from geonb import training
    from geonb.tasks import get_task

    assert get_task("clouds").cpu_bf16 and not get_task("segment").cpu_bf16
    for native in (True, False):
        monkeypatch.setattr(training, "cpu_has_bf16", lambda native=native: native)
        assert accelerator("cpu", cpu_bf16=True).amp is native  # emulated bf16 is slower: float32 there
        assert accelerator("cpu", cpu_bf16=False).amp is False
        assert accelerator("cpu", "off", cpu_bf16=True).amp is False and accelerator("cpu", "bf16").amp is True
        assert training.run_accelerator(Run(tmp_path, arch="dincae", quick=True)).amp is native
        assert training.run_accelerator(Run(tmp_path, arch="segnet", quick=True)).amp is False
        # per arch within a task: srcnn measured under bf16; srgan diverged under it, so float32
        assert training.run_accelerator(Run(tmp_path, arch="srcnn", quick=True)).amp is native
        assert training.run_accelerator(Run(tmp_path, arch="srgan", quick=True)).amp is False


def test_training_says_up_front_how_long_it_will_take(tmp_path, capsys):
    _train(tmp_path / "eta", epochs=3)
    err = capsys.readouterr().err
    assert "the first epoch took" in err and "for 3 epoch(s) in all" in err
    assert err.count("[geonb] srcnn epoch") == 3


def test_run_with_ddp_trains_in_two_processes_then_writes_its_model(tmp_path, capfd):
    """``-p ddp 2``: torchrun trains, the notebook's step resumes the finished run and writes the model file."""
    from geonb.workflow import Run

    run = Run(tmp_path, quick=True, ddp=2, arch="srcnn")
    report = run.step("train")
    out = capfd.readouterr()
    assert "data-parallel training in 2 processes" in out.out
    assert "resuming srcnn from epoch" in out.out + out.err  # the step itself did not train again
    assert run.trained() and "Model file" in report.text


# ---------------------------------------------------------------- out of core: dask
def _downscale_model(arch, cond_res=(), seed=0, **args):
    from geonb.modelfile import TrainedModel
    from geonb.normalise import Normaliser

    torch.manual_seed(seed)
    arch_args = {"factor": 4, "cond_res": list(cond_res), **args}
    weights = [get_arch(arch).build("generator", **arch_args).state_dict()]
    norms = {"target": Normaliser(100.0, 30.0), **{f"cond c{k}": Normaliser(0.0, 1.0) for k in range(len(cond_res))}}
    return TrainedModel("downscale", arch, arch_args, weights, norms,
                        inputs={"variable": "z", "cond": [f"c{k}" for k in range(len(cond_res))], "valid_above": None,
                                "crs": ""}, info={"trained_on": "test"})


@pytest.mark.parametrize("arch,cond_res,args", [("srcnn", (), {}), ("srgan", (2,), {"n_blocks": 1, "nf": 8})])
def test_dask_prediction_equals_in_memory_prediction(arch, cond_res, args):
    """Chunks with a halo (replicated at the grid's edge), cropped: no seams, equal to one pass, any chunking."""
    import dask.array as dsa

    from geonb.predict import Predictor
    from geonb.tasks.downscale.infer import predict_grid, predict_lazy

    predictor = Predictor(_downscale_model(arch, cond_res, **args))
    rng = np.random.default_rng(0)
    h = 2 * predictor.halo + 14  # chunks of halo + 2: two and a ragged last one joined to the second
    lr = 100 + 30 * rng.standard_normal((h, h + 5)).cumsum(0) / 5
    conds = [rng.standard_normal((h * r, (h + 5) * r)) for r in cond_res]
    whole = predict_grid(predictor, lr, conds, tile=None)
    for chunk in (predictor.halo + 2, predictor.halo + 5):
        lazy = predict_lazy(predictor, dsa.from_array(lr, chunks=chunk), [dsa.from_array(c) for c in conds],
                            chunk=chunk, tile=12)
        assert lazy.chunks[0][0] == 4 * chunk  # really chunked
        np.testing.assert_allclose(lazy.compute(scheduler="threads"), whole, rtol=0, atol=1e-3)


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_geonb_predict_streams_zarr_and_netcdf_on_dask(tmp_path, suffix):
    """``geonb predict`` opens the input lazily and writes the output chunk by chunk, on a LocalCluster
    given by address or on local threads; the file equals the in-memory prediction."""
    import xarray as xr
    from distributed import LocalCluster

    from geonb.cli import main
    from geonb.predict import Predictor
    from geonb.tasks.downscale.infer import predict_grid

    model = _downscale_model("srcnn")
    model.save(tmp_path / "m.pt")
    lr = 100 + 30 * np.random.default_rng(1).standard_normal((50, 40)).cumsum(1) / 5
    grid = xr.Dataset({"z": (("y", "x"), lr)}, coords={"y": np.arange(50) * 4000.0, "x": np.arange(40) * 4000.0})
    source = tmp_path / f"in{suffix}"
    grid.to_zarr(source) if suffix == ".zarr" else grid.to_netcdf(source)
    out = tmp_path / f"out{suffix}"
    command = ["predict", "--model", str(tmp_path / "m.pt"), "--input", str(source), "--var", "z", "--out", str(out),
               "--chunk", "16"]
    if suffix == ".zarr":  # on a cluster given by address
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
            assert main([*command, "--scheduler", cluster.scheduler_address]) == 0
    else:  # on this machine's threads
        assert main(command) == 0
    result = (xr.open_zarr(out) if suffix == ".zarr" else xr.open_dataset(out))["z"]
    assert result.shape == (200, 160) and result.dims == ("y", "x")
    np.testing.assert_allclose(result.values, predict_grid(Predictor(model), lr), atol=1e-3)


def test_data_parallel_runs_it_cannot_do_are_refused_before_training(tmp_path):
    from geonb.workflow import Run

    with pytest.raises(GeonbError, match=r"training method \(stagewise\) does not train in data-parallel processes"):
        Run(tmp_path, quick=True, ddp=2, arch="rsrcnn").step("train")
    with pytest.raises(GeonbError, match="batch_size 1 cannot be shared by ddp 2"):
        Run(tmp_path, quick=True, ddp=2, arch="srcnn", batch_size=1).step("train")


def test_a_chunk_below_one_is_refused_before_any_work(tmp_path, capsys):
    from geonb.cli import main

    model = _downscale_model("srcnn")
    model.save(tmp_path / "m.pt")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--input", "jacksboro", "--out",
                 str(tmp_path / "o.nc"), "--chunk", "-3"]) == 2
    assert "must be at least 1" in capsys.readouterr().err and not (tmp_path / "o.nc").exists()
