"""The CycleGAN task on the sample-monet data at tiny sizes: real steps, resume, translation into a zip."""

from __future__ import annotations

import copy
import io
import zipfile

import pytest
import torch
from PIL import Image

from kompete.config import load_config
from kompete.data import load_domains
from kompete.runtime.context import make_context
from kompete.algorithms.cyclegan.task import CycleGanTask

TINY = ["train.model=cyclegan", "data.image_size=32", "data.load_size=36", "data.sample.n_images=24",
        "data.sample.n_target=8", "data.sample.image_size=32", "train.batch_size=2", "train.g_channels=4", "train.d_channels=4",
        "cyclegan.n_blocks=1", "cyclegan.pool_size=3", "cyclegan.grid_photos=2"]


def tiny_config(*extra: str):
    return load_config("sample-monet", TINY + list(extra))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def domains():
    return load_domains(tiny_config(), progress=False)


def make_task(domains, *extra: str) -> CycleGanTask:
    cfg = tiny_config(*extra)
    return CycleGanTask(cfg, make_context(cfg, "cpu"), domains)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_a_real_step_updates_all_four_networks(domains, generator):
    task = make_task(domains, f"cyclegan.generator={generator}")
    before = {name: weights(getattr(task.nets, name)) for name in ("to_monet", "to_photo", "d_monet", "d_photo")}
    for _ in range(2):
        losses = task.step(task.next_batch())
    assert set(losses) == set(task.loss_names)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses["cycle"] > 0 and losses["identity"] > 0
    for name, old in before.items():
        new = getattr(task.nets, name).state_dict()
        changed = [k for k in old if not torch.equal(old[k], new[k])]
        assert changed, f"{name} did not change"
    # the discriminators' gradients must not leak into the generators' step and vice versa
    assert all(p.requires_grad for p in task.nets.parameters())


def test_diffaugment_on_the_discriminator_inputs_trains(domains):
    task = make_task(domains, "train.diffaugment=color,translation,cutout")
    losses = task.step(task.next_batch())
    assert all(torch.isfinite(v) for v in losses.values())


def test_learning_rate_is_constant_for_half_the_schedule_then_falls_linearly_to_zero():
    from kompete.train.schedule import lr_factor

    t = tiny_config().train  # sample-monet: linear, decay from 0.5
    assert [lr_factor(t, p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [1.0, 1.0, 1.0, 0.5, 0.0]


def test_identity_weight_zero_skips_the_identity_passes(domains):
    task = make_task(domains, "cyclegan.lambda_identity=0")
    losses = task.step(task.next_batch())
    assert losses["identity"] == 0 and losses["cycle"] > 0


def test_batches_are_augmented_crops_in_range(domains):
    task = make_task(domains)
    photo, monet = task.next_batch()
    assert photo.shape == monet.shape == (2, 3, 32, 32)
    assert photo.min() >= -1 and photo.max() <= 1
    assert task.steps_per_epoch == 24 // 2


def test_resume_continues_the_same_trajectory(domains):
    torch.manual_seed(0)
    straight = make_task(domains)
    for _ in range(2):
        straight.step(straight.next_batch())
    saved = copy.deepcopy(straight.state_dict())
    for _ in range(2):
        straight.step(straight.next_batch())

    resumed = make_task(domains, "train.seed=5")  # different seed: everything must come from the state
    resumed.load_state_dict(saved)
    for _ in range(2):
        resumed.step(resumed.next_batch())
    a, b = straight.nets.state_dict(), resumed.nets.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.step_count == straight.step_count == 4


def test_sample_grid_pairs_each_photo_with_its_translation(domains):
    task = make_task(domains)
    grid = task.sample_grid()
    assert grid.dtype == torch.uint8 and grid.shape == (4, 3, 32, 32)


# --------------------------------------------------------------------------- translation into the zip


def read_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        images = [Image.open(io.BytesIO(zf.read(n))) for n in names]
    return names, images


def test_translate_writes_the_configured_count_of_valid_jpgs(domains, tmp_path):
    from kompete.generate import GenerateOptions, write_zip

    cfg = tiny_config("output.n_min=10", "output.image_size=40")
    task = CycleGanTask(cfg, make_context(cfg, "cpu"), None)  # as `kompete generate` builds it: no data
    out = write_zip(task, cfg, tmp_path / "images.zip", GenerateOptions(n=30, batch_size=7, progress=False))
    assert task.nets.to_monet.training  # the writer's eval mode does not outlive it
    names, images = read_zip(out)
    assert len(names) == len(set(names)) == 30
    assert all(n.endswith(".jpg") for n in names)
    assert all(im.format == "JPEG" and im.mode == "RGB" and im.size == (40, 40) for im in images)
    # past the 24 photos come their mirror images, translated: new images, not copies
    pixels = [bytes(im.tobytes()) for im in images]
    assert len(set(pixels)) == 30


def test_translate_refuses_more_than_twice_the_photos(tmp_path):
    from kompete.errors import ConfigError
    from kompete.generate import GenerateOptions, write_zip

    cfg = tiny_config("output.n_min=10")
    task = CycleGanTask(cfg, make_context(cfg, "cpu"), None)
    with pytest.raises(ConfigError, match="at most 48"):
        write_zip(task, cfg, tmp_path / "images.zip", GenerateOptions(n=49, progress=False))
    assert not (tmp_path / "images.zip").exists()


@pytest.mark.slow
def test_cli_trains_sample_monet_then_translates_into_a_zip(tmp_path, isolated_cache):
    from tests.conftest import run_kompete

    sets = [arg for s in TINY + ["output.n_min=10", "generate.n_images=20"] for arg in ("--set", s)]
    env = {"KOMPETE_CACHE_DIR": str(isolated_cache), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    res = run_kompete("train", "sample-monet", "--out", str(run), "--time-budget", "60s", "--max-steps", "3",
                      "--quiet", *sets, env=env)
    assert res.returncode == 0, res.stderr
    assert "steps         3" in res.stdout
    assert (run / "samples" / "final.png").is_file() and (run / "metrics.csv").is_file()
    res = run_kompete("generate", str(run), "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    names, images = read_zip(run / "images.zip")
    assert len(names) == 20 and all(im.size == (64, 64) for im in images)


def test_epoch_schedule_continues_across_resumed_runs(domains, tmp_path):
    """lr_over=epochs: 2 epochs of 12 steps, decay from step 12; a resumed run picks up the schedule."""
    from kompete.train.budget import make_budget
    from kompete.train.trainer import Trainer

    extra = ("train.lr_over=epochs", "train.epochs=2", "train.log_every=100")
    task = make_task(domains, *extra)
    Trainer(task.cfg, task, tmp_path, make_budget(task.cfg, 600), progress=False, max_steps=6).run()
    assert task.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4)  # still in the constant half

    resumed = make_task(domains, *extra)
    trainer = Trainer(resumed.cfg, resumed, tmp_path, make_budget(resumed.cfg, 600), progress=False, max_steps=18)
    trainer.resume(tmp_path)
    assert resumed.step_count == 6
    trainer.run()
    # the last step ran at step_count 17: 1 - (17/24 - 0.5) / 0.5
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - (17 / 24 - 0.5) / 0.5))


# --------------------------------------------------------------------------- CUT and FastCUT on the same data


@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_cut_trains_resumes_exactly_and_translates(domains, tmp_path, model):
    from kompete.algorithms.base import build_task
    from kompete.generate import GenerateOptions, write_zip
    from kompete.train.budget import make_budget
    from kompete.train.trainer import Trainer

    cfg = tiny_config(f"train.model={model}", "cut.num_patches=16", "cut.mlp_channels=8", "output.n_min=10")
    ctx = make_context(cfg, "cpu")
    straight = build_task(cfg, ctx, domains)
    before = weights(straight.nets)
    Trainer(cfg, straight, tmp_path / "a", make_budget(cfg, 600), progress=False, max_steps=4).run()
    after = weights(straight.nets)
    for part in ("generator", "discriminator", "heads"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    first = build_task(cfg, ctx, domains)
    Trainer(cfg, first, tmp_path / "b", make_budget(cfg, 600), progress=False, max_steps=2).run()
    resumed = build_task(cfg, ctx, domains)
    trainer = Trainer(cfg, resumed, tmp_path / "b", make_budget(cfg, 600), progress=False, max_steps=4)
    trainer.resume(tmp_path / "b")
    trainer.run()
    assert all(torch.equal(after[k], v) for k, v in weights(resumed.nets).items())
    from kompete.train.monitor import read_metrics

    rows = read_metrics(tmp_path / "a" / "metrics.csv")
    assert (rows["nce_idt"] > 0).all() == (model == "cut")
    out = write_zip(straight, cfg, tmp_path / "images.zip", GenerateOptions(n=30, batch_size=7, progress=False))
    with zipfile.ZipFile(out) as z:
        assert len(z.namelist()) == 30
