"""Training for the `generate` task: models, losses, the Trainer's budget, checkpoints, guards, generation."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from PIL import Image

from kompete import losses, models  # noqa: F401  (fill the registries before parametrising)
from kompete.config import load_config
from kompete.data.diffaugment import diff_augment, parse_policy
from kompete.errors import ConfigError, TrainingError
from kompete.algorithms.gan.task import truncated_noise
from kompete.generate import GenerateOptions, generate_zip, write_zip
from kompete.models import EMA
from kompete.losses import LOSSES
from kompete.models import GAN_NETWORKS
from kompete.algorithms.base import build_task, task_class
from kompete.runtime.context import make_context
from kompete.train import state as ckpt
from kompete.train.budget import make_budget, parse_duration, set_reserve
from kompete.train.monitor import read_metrics
from kompete.train.trainer import Trainer
from tests.conftest import REPO, run_kompete

TINY = ["data.image_size=16", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=16",
        "train.log_every=2", "output.n_min=1", "generate.batch_size=16", "gan.ema_decay=0.9"]


def tiny_cfg(*extra: str):
    return load_config("sample-dogs", [*TINY, *extra])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dogs16(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "kompete-cache"
    old = os.environ.get("KOMPETE_CACHE_DIR")
    os.environ["KOMPETE_CACHE_DIR"] = str(cache)
    try:
        cfg = tiny_cfg()
        yield task_class(cfg).load_data(cfg, progress=False)
    finally:
        if old is None:
            os.environ.pop("KOMPETE_CACHE_DIR", None)
        else:
            os.environ["KOMPETE_CACHE_DIR"] = old


def new_task(cfg, data):
    return build_task(cfg, make_context(cfg, "cpu"), data)


def train(cfg, data, run_dir, steps, on_step=None, resume=None, seconds=600.0):
    task = new_task(cfg, data)
    trainer = Trainer(cfg, task, run_dir, make_budget(cfg, seconds), progress=False, on_step=on_step,
                      max_steps=steps)
    if resume is not None:
        trainer.resume(resume)
    return trainer, trainer.run()


# --------------------------------------------------------------------------- models and losses


def test_the_gan_algorithm_lists_every_registered_network():
    assert sorted(load_config("sample-dogs").spec.models) == GAN_NETWORKS.names()


@pytest.mark.parametrize("model", GAN_NETWORKS.names())
def test_every_model_maps_noise_to_images_and_scores_them(model, dogs16):
    cfg = tiny_cfg(f"train.model={model}")
    built = GAN_NETWORKS.get(model)(cfg, 4)
    z, y = torch.randn(4, cfg.algo.z_dim), torch.tensor([0, 1, 2, 3])
    x = built.generator(z, y)
    assert x.shape == (4, 3, 16, 16) and x.abs().max() <= 1
    logits = built.discriminator(x, y)
    assert logits.shape == (4,)
    logits.sum().backward()
    assert all(p.grad is not None for p in built.generator.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_finite_gradients_in_the_right_direction(name):
    loss = losses.build(name)
    # logits inside every loss's active region: fake ones D should push down, G up
    real = torch.tensor([0.2, 0.1, 0.3], requires_grad=True)
    fake = torch.tensor([0.3, 0.5, 0.4], requires_grad=True)
    d = loss.d(real, fake)
    g = loss.g(real.detach(), fake)
    assert math.isfinite(d.item()) and math.isfinite(g.item())
    d_grad_fake = torch.autograd.grad(d, fake, retain_graph=True)[0]
    g_grad_fake = torch.autograd.grad(g, fake)[0]
    assert (d_grad_fake >= 0).all() and d_grad_fake.sum() > 0
    assert (g_grad_fake <= 0).all() and g_grad_fake.sum() < 0


def test_diffaugment_keeps_shape_and_gradients():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x * 2 - 1, parse_policy("color,translation,cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unknown DiffAugment op 'zoom'"):
        parse_policy("color,zoom")


def test_ema_copies_before_its_start_then_averages():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.5, start=1)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model, step=0)
    assert torch.equal(ema.shadow.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.update(model, step=1)
    assert torch.allclose(ema.shadow.weight, torch.full_like(model.weight, 3.0))


def test_truncated_noise_stays_inside_the_threshold_and_is_seeded():
    a = truncated_noise(500, 8, 0.5, torch.Generator().manual_seed(1))
    b = truncated_noise(500, 8, 0.5, torch.Generator().manual_seed(1))
    assert a.abs().max() <= 0.5 and torch.equal(a, b)


# --------------------------------------------------------------------------- training


def test_training_steps_change_the_weights_and_keep_losses_finite(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=sngan", "train.diffaugment=color,translation,cutout")
    task = new_task(cfg, dogs16)
    before = [p.detach().clone() for p in task.G.parameters()]
    trainer = Trainer(cfg, task, tmp_path, make_budget(cfg, 600), progress=False, max_steps=6)
    result = trainer.run()
    assert result.reason == "max_steps" and result.steps == 6
    assert any(not torch.equal(a, b) for a, b in zip(before, task.G.parameters()))
    metrics = read_metrics(tmp_path / "metrics.csv")
    assert list(metrics["step"]) == [2, 4, 6]
    for name in ("d", "g", "d_real", "d_fake"):
        assert all(math.isfinite(v) for v in metrics[name])
    assert (tmp_path / "losses.png").is_file() and (tmp_path / "d_outputs.png").is_file()
    assert Image.open(tmp_path / "samples" / "final.png").size[0] > 16
    assert task.G.training  # sample grids switch G to eval mode only while they draw


def test_sample_grids_leave_the_generator_training(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=dcgan", "generate.use_ema=false")
    task = new_task(cfg, dogs16)
    task.sample_grid()
    task.step(task.next_batch())
    assert task.G.training and int(task.G.state_dict()["net.1.num_batches_tracked"]) == 1  # one G forward per step; the grid ran in eval mode


def test_discriminator_learns_to_separate_real_from_generated(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=dcgan", "train.loss=bce", "train.lr_d=2e-3", "train.log_every=4")
    _, result = train(cfg, dogs16, tmp_path, 12)
    metrics = read_metrics(tmp_path / "metrics.csv")
    gap = metrics["d_real"] - metrics["d_fake"]
    assert result.steps == 12 and gap[-1] > 0.5 and gap[-1] > gap[0], gap  # mean logit on real above fake


def test_resume_continues_the_same_trajectory(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=dcgan_cond", "train.diffaugment=translation")
    straight, _ = train(cfg, dogs16, tmp_path / "a", 8)
    train(cfg, dogs16, tmp_path / "b", 4)
    assert ckpt.find_checkpoint(tmp_path / "b").name == "step-00000004.pt"
    resumed, result = train(cfg, dogs16, tmp_path / "b", 8, resume=tmp_path / "b")
    assert result.steps == 8
    for a, b in zip(straight.task.G.state_dict().values(), resumed.task.G.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.task.ema.shadow.parameters(), resumed.task.ema.shadow.parameters()):
        assert torch.equal(a, b)


def test_resuming_a_checkpoint_of_another_model_is_a_clear_error(dogs16, tmp_path):
    train(tiny_cfg("train.model=dcgan"), dogs16, tmp_path, 1)
    with pytest.raises(TrainingError, match="does not fit this config"):
        train(tiny_cfg("train.model=sngan"), dogs16, tmp_path, 2, resume=tmp_path)


def test_checkpoints_keep_only_the_newest(dogs16, tmp_path):
    cfg = tiny_cfg("train.checkpoint_minutes=1e-9", "train.keep_checkpoints=2")
    train(cfg, dogs16, tmp_path, 5)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step-00000004.pt", "step-00000005.pt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_time_budget_stops_before_the_deadline_keeping_the_reserve(dogs16, tmp_path):
    cfg = tiny_cfg("train.epochs=100000")
    task = new_task(cfg, dogs16)
    budget = set_reserve(make_budget(cfg, 3.0), generation_s=1.0, safety_margin_s=0.0)
    assert budget.reserve_s == pytest.approx(1.25)
    ends: list[float] = []
    result = Trainer(cfg, task, tmp_path, budget, progress=False, on_step=lambda t: ends.append(time.monotonic())).run()
    assert result.reason == "deadline" and len(ends) > 2
    # steps run while the training window is open; the loop stops at its first check past it
    assert all(end < budget.train_end for end in ends[:-1])
    assert budget.train_end - 1.0 < ends[-1] < budget.train_end + 1.0


def test_budget_without_room_to_train_is_a_clear_error():
    cfg = tiny_cfg()
    with pytest.raises(TrainingError, match="no time left to train"):
        set_reserve(make_budget(cfg, 10.0), generation_s=20.0, safety_margin_s=0.0)
    assert parse_duration("8h30m") == 30600 and parse_duration("60s") == 60 and parse_duration("45") == 45
    with pytest.raises(ConfigError, match="expected a duration"):
        parse_duration("soon")


def test_lr_schedules_follow_the_budget_fraction():
    from kompete.train.schedule import lr_factor

    const, cos, lin = (tiny_cfg(f"train.lr_schedule={k}", "train.lr_cycles=2", "train.lr_decay_start=0.5").train
                       for k in ("constant", "cosine", "linear"))
    assert [lr_factor(const, p) for p in (0, 0.5, 1)] == [1, 1, 1]
    assert [round(lr_factor(cos, p), 6) for p in (0, 0.25, 0.49999, 0.5, 1)] == [1, 0.5, 0, 1, 0]
    assert [lr_factor(lin, p) for p in (0, 0.5, 0.75, 1)] == [1, 1, 0.5, 0]


def test_kernel_start_anchors_the_deadline(monkeypatch):
    cfg = tiny_cfg()  # runtime 0.05 h = 180 s
    monkeypatch.setenv("KOMPETE_KERNEL_START", str(time.time() - 100))
    budget = make_budget(cfg, None, now=0.0)
    assert budget.end == pytest.approx(80, abs=2)


def test_sigterm_saves_a_checkpoint_and_stops(dogs16, tmp_path):
    cfg = tiny_cfg()

    def kill_at_three(trainer):
        if trainer.task.step_count == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    _, result = train(cfg, dogs16, tmp_path, 100, on_step=kill_at_three)
    assert result.reason == "signal" and result.signal_name == "SIGTERM"
    assert ckpt.find_checkpoint(tmp_path).name == "step-00000003.pt"
    assert signal.getsignal(signal.SIGTERM) is previous


def poison(trainer):
    with torch.no_grad():
        next(trainer.task.G.parameters()).fill_(float("nan"))


def test_a_non_finite_loss_restores_the_last_checkpoint_with_a_lower_lr(dogs16, tmp_path):
    cfg = tiny_cfg("gan.ema_decay=0")
    fired = []

    def once(trainer):
        if trainer.task.step_count == 3 and not fired:
            fired.append(1)
            poison(trainer)

    trainer, result = train(cfg, dogs16, tmp_path, 6, on_step=once)
    assert trainer.nan_restores == 1 and result.steps == 6
    assert all(torch.isfinite(p).all() for p in trainer.task.G.parameters())
    lrs = read_metrics(tmp_path / "metrics.csv")["lr_g"]
    assert lrs[-1] == pytest.approx(cfg.train.lr_g / 2)


def test_repeated_non_finite_losses_stop_with_a_clear_error_keeping_checkpoints(dogs16, tmp_path):
    cfg = tiny_cfg("train.nan_retries=2", "gan.ema_decay=0")
    with pytest.raises(TrainingError, match="non-finite loss .* after 2 restores"):
        train(cfg, dogs16, tmp_path, 50, on_step=poison)
    assert ckpt.find_checkpoint(tmp_path).name == "step-00000000.pt"


# --------------------------------------------------------------------------- generation


def test_generate_writes_exactly_n_valid_pngs_deterministically(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=sngan_cond")
    train(cfg, dogs16, tmp_path / "run", 2)
    a = generate_zip(tmp_path / "run", tmp_path / "a.zip", n=37, seed=3, progress=False)
    b = generate_zip(tmp_path / "run", tmp_path / "b.zip", n=37, seed=3, progress=False, truncation=0.0)
    c = generate_zip(tmp_path / "run", tmp_path / "c.zip", n=37, seed=4, progress=False)
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb, zipfile.ZipFile(c) as zc:
        names = za.namelist()
        assert names == [f"{i:05d}.png" for i in range(37)]
        for name in names:
            img = Image.open(io.BytesIO(za.read(name)))
            assert img.format == "PNG" and img.size == (64, 64) and img.mode == "RGB"
        assert all(za.read(n) == zb.read(n) for n in names)
        assert any(za.read(n) != zc.read(n) for n in names)


def test_generate_refuses_a_count_the_competition_rejects(dogs16, tmp_path):
    cfg = tiny_cfg("output.n_min=10", "output.n_max=20", "generate.n_images=20")
    trainer, _ = train(cfg, dogs16, tmp_path / "run", 1)
    with pytest.raises(ConfigError, match="outside what sample-dogs accepts"):
        write_zip(trainer.task, cfg, tmp_path / "x.zip", GenerateOptions(n=21, progress=False))
    assert not (tmp_path / "x.zip").exists()


# --------------------------------------------------------------------------- CLI


ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_cli_trains_then_generates_a_zip(tmp_path):
    sets = [a for s in TINY for a in ("--set", s)]
    run = tmp_path / "run"
    r = run_kompete("train", "sample-dogs", "--out", str(run), "--max-steps", "3", "--time-budget", "2m",
                    "--quiet", *sets, "--set", "generate.n_images=25", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert "steps         3" in r.stdout and (run / "config.yaml").is_file()
    r = run_kompete("generate", str(run), "--quiet", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(run / "images.zip") as z:
        assert len(z.namelist()) == 25


@pytest.mark.slow
def test_cli_train_records_the_run_and_a_later_score_of_its_zip_joins_it(tmp_path, isolated_ledger):
    from kompete.ledger.record import record_score
    from kompete.ledger.store import Ledger

    sets = [a for s in TINY for a in ("--set", s)]
    run = tmp_path / "run"
    r = run_kompete("train", "sample-dogs", "--out", str(run), "--max-steps", "2", "--time-budget", "2m",
                    "--quiet", *sets, "--set", "generate.n_images=25", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    with Ledger(isolated_ledger) as ledger:
        (trained,) = ledger.runs("sample-dogs")
        assert trained["run_dir"] == str(run.resolve()) and trained["images_per_s"] > 0
        (run / "images.zip").write_bytes(b"stand-in for the generated zip")
        record_score(ledger, "sample-dogs", zip_path=run / "images.zip", mifid=50.0)
        (scored,) = ledger.runs("sample-dogs")
    assert scored["id"] == trained["id"] and scored["mifid"] == 50.0 and scored["images_per_s"] > 0


@pytest.mark.slow
def test_cli_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    run = tmp_path / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    proc = subprocess.Popen([sys.executable, "-m", "kompete", "train", "sample-dogs", "--out", str(run),
                             "--time-budget", "10m", "--quiet", *sets, "--set", "generate.n_images=25"],
                            env={**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run / "metrics.csv").is_file() or (run / "metrics.csv").stat().st_size < 80:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    step = int(out.split("steps")[1].split()[0])
    assert step > 0 and ckpt.find_checkpoint(run).name == f"step-{step:08d}.pt"


def test_cli_bad_settings_are_one_clear_error(tmp_path):
    r = run_kompete("train", "sample-dogs", "--out", str(tmp_path), "--set", "train.model=biggan9000")
    assert r.returncode == 2
    assert "'train.model' is 'biggan9000'; choose one of: " in r.stderr and "dcgan, " in r.stderr
    assert r.stderr.startswith("Error:") and "Traceback" not in r.stderr
    r = run_kompete("generate", str(tmp_path / "nothing-here"))
    assert r.returncode != 0 and r.stderr.startswith("Error:") and "Traceback" not in r.stderr


def test_an_unknown_loss_is_a_config_error_before_any_data_is_read():
    with pytest.raises(ConfigError) as err:
        task_class(tiny_cfg("train.loss=wasserstein"))
    assert "'train.loss' is 'wasserstein'; choose one of: bce" in err.value.render()


@pytest.mark.parametrize("setting, message", [
    ("train.lr_g=fast", "'train.lr_g' must be a number"),
    ("train.lr_schedule=sawtooth", "'train.lr_schedule' must be one of constant, cosine, linear"),
    ("generate.truncation=-1", "'generate.truncation' must be >= 0"),
])
def test_bad_training_settings_are_config_errors(setting, message):
    with pytest.raises(ConfigError) as err:
        tiny_cfg(setting)
    assert message in err.value.render()


def test_amp_picks_fp16_on_a_t4_and_bf16_from_ampere():
    from kompete.runtime.context import amp_dtype_for

    assert amp_dtype_for((7, 5)) == torch.float16  # T4, Kaggle's GPU: bf16 only emulated
    assert amp_dtype_for((8, 0)) == torch.bfloat16  # A100
    assert amp_dtype_for((9, 0)) == torch.bfloat16  # H100/H200


def test_each_ddp_rank_draws_its_own_noise_from_the_same_seed():
    from kompete.runtime.context import Context

    def draw(rank: int) -> torch.Tensor:
        Context(device=torch.device("cpu"), rank=rank, world_size=2, local_rank=rank).seed_streams(7)
        return torch.randn(4)

    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))


@pytest.mark.slow
def test_torchrun_two_ranks_train_and_resume_with_ddp(tmp_path):
    """The Kaggle T4 x2 launch, on the CPU with gloo: both ranks step, stop together, and resume."""
    run = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "kompete", "train", "sample-dogs", "--out", str(run), "--time-budget", "2m", "--quiet",
                "--no-record", *[a for s in TINY for a in ("--set", s)], "--set", "generate.n_images=25"]
    env = {**os.environ, "PYTHONPATH": str(REPO), **ONE_THREAD}
    for steps in (3, 5):
        r = subprocess.run([*torchrun, "--max-steps", str(steps)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "DDP rank 0/2" in r.stdout and f"steps         {steps}" in r.stdout
    assert "resumed from" in r.stdout and (run / "checkpoints" / "step-00000005.pt").is_file()


# --------------------------------------------------------------------------- algorithms on the new seams


def test_wgan_gp_trains_a_critic_without_batch_norm_and_adds_its_penalty(dogs16, tmp_path):
    cfg = tiny_cfg("train.loss=wgan_gp", "train.d_steps=2", "loss.gp_weight=10")
    trainer, result = train(cfg, dogs16, tmp_path, 4)
    D = trainer.task.D
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in D.modules())
    rows = read_metrics(tmp_path / "metrics.csv")
    assert result.steps == 4 and all(math.isfinite(v) for v in rows["d"])
    # the D loss is the Wasserstein estimate plus a non-negative penalty that is zero only at gradient norm 1
    x, y = trainer.task.next_batch()
    critic = lambda images: D(images, y)  # noqa: E731
    fake = torch.rand_like(x) * 2 - 1
    loss, real_logits, fake_logits = trainer.task.loss.discriminator_loss(critic, x, fake)
    assert loss.item() > (fake_logits.mean() - real_logits.mean()).item()


def test_g_steps_updates_the_generator_that_many_times_per_step(dogs16, tmp_path):
    trainer, _ = train(tiny_cfg("train.g_steps=2", "train.d_steps=1"), dogs16, tmp_path, 3)
    step_counts = {int(s["step"]) for s in trainer.task.opt_g.state_dict()["state"].values()}
    d_counts = {int(s["step"]) for s in trainer.task.opt_d.state_dict()["state"].values()}
    assert step_counts == {6} and d_counts == {3}


def test_the_vanilla_gan_trains_and_generates_on_the_dog_sample(dogs16, tmp_path):
    cfg = tiny_cfg("train.model=vanilla_cond", "train.g_channels=8", "train.d_channels=8")
    train(cfg, dogs16, tmp_path / "run", 3)
    z = generate_zip(tmp_path / "run", tmp_path / "v.zip", n=10, progress=False)
    with zipfile.ZipFile(z) as zf:
        assert len(zf.namelist()) == 10
