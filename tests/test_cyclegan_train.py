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
from kompete.train.context import make_context
from kompete.train.cyclegan import CycleGanTask

TINY = ["data.image_size=32", "data.load_size=36", "data.sample.n_images=24", "data.sample.n_target=8",
        "data.sample.image_size=32", "train.batch_size=2", "train.g_channels=4", "train.d_channels=4",
        "cyclegan.n_blocks=1", "cyclegan.pool_size=3", "cyclegan.grid_photos=2"]


def tiny_config(*extra: str):
    return load_config("sample-monet", TINY + list(extra))


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
