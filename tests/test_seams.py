"""One shape for every family: the config hash survives new keys, networks and losses own their options,
names are checked torch-free when a config is read, and a loss may run a lazy regulariser."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from kompete import config, losses
from kompete.config import config_hash, load_config
from kompete.errors import ConfigError
from tests.conftest import REPO


# --------------------------------------------------------------------------- identity


def with_new_train_key(monkeypatch, default):
    plus = dataclasses.make_dataclass("TrainConfig", [("brand_new", type(default), dataclasses.field(default=default))],
                                      bases=(config.TrainConfig,), frozen=True)
    monkeypatch.setattr(config, "TrainConfig", plus)  # Config's `train: TrainConfig` now resolves to it


def test_adding_a_key_with_a_default_leaves_every_hash_unchanged(monkeypatch):
    names = ("sample-dogs", "sample-monet", "generative-dog-images")
    before = [config_hash(load_config(n)) for n in names]
    with_new_train_key(monkeypatch, 7)
    grown = load_config("sample-dogs")
    assert grown.train.brand_new == 7 and "brand_new" in grown.to_dict()["train"]
    assert [config_hash(load_config(n)) for n in names] == before
    assert config_hash(load_config("sample-dogs", ["train.brand_new=8"])) != before[0]


def test_the_hash_counts_the_schema_version_and_every_changed_value(monkeypatch):
    base = config_hash(load_config("sample-dogs"))
    assert config_hash(load_config("sample-dogs", ["train.lr_g=2e-4"])) != base  # back to the default is a change
    monkeypatch.setattr(config, "SCHEMA_VERSION", config.SCHEMA_VERSION + 1)
    assert config_hash(load_config("sample-dogs")) != base


# --------------------------------------------------------------------------- networks and losses own their options


def error_of(name: str, *sets: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(name, list(sets))
    return err.value.render()


def test_an_option_of_another_network_is_an_error_naming_the_key_and_the_network():
    msg = error_of("generative-dog-images", "train.model=dcgan", "gan.self_attention=false")
    assert "'gan.self_attention' is an option of biggan, sngan, not of dcgan" in msg and "--set gan.self_attention" in msg
    assert "unknown key 'w_dim' in gan" in error_of("sample-dogs", "gan.w_dim=7")
    # a saved sngan config switched to dcgan keeps working: its sngan keys are at their defaults
    switched = load_config("generative-dog-images", ["train.model=dcgan"])
    assert not hasattr(switched.algo, "self_attention")
    assert load_config("generative-dog-images").algo.self_attention is True


def test_a_loss_takes_its_own_options_and_no_other():
    cfg = load_config("sample-dogs", ["train.loss=r1", "loss.gamma=2", "loss.every=4"])
    assert (cfg.loss.gamma, cfg.loss.every) == (2.0, 4) and cfg.to_dict()["loss"] == {"gamma": 2.0, "every": 4}
    assert "'loss.gamma' is an option of r1, not of hinge (hinge takes none)" in error_of("sample-dogs", "loss.gamma=2")
    assert "'loss.gamma' is an option of r1, not of bce" in error_of("sample-dogs", "train.loss=bce", "loss.gamma=2")
    assert "'loss.every' must be >= 1" in error_of("sample-dogs", "train.loss=r1", "loss.every=0")
    assert "'gan.gp_weight' is now 'loss.gp_weight'" in error_of("sample-dogs", "gan.gp_weight=3")
    built = losses.build("bce", load_config("sample-dogs", ["train.loss=bce", "loss.label_smoothing=0.2"]).loss)
    assert built.smoothing == 0.2


@pytest.mark.parametrize("sets, fragment", [
    (["train.loss=bogus"], "--set train.loss: 'train.loss' is 'bogus'; choose one of: bce, hinge"),
    (["train.diffaugment=nonsense"], "--set train.diffaugment: 'train.diffaugment' names 'nonsense'"),
    (["train.model=cut", "cut.nce_blocks=[99]"], "--set cut.nce_blocks: 'cut.nce_blocks' names residual blocks [99]"),
    (["train.model=cyclegan", "train.loss=bce"], "'train.loss' is 'bce', but cyclegan trains with 'lsgan' or 'hinge'"),
])
def test_names_are_checked_when_the_config_is_read(sets, fragment):
    competition = "sample-dogs" if "diffaugment" in sets[0] or "bogus" in sets[0] else "sample-monet"
    assert fragment in error_of(competition, *sets)


def test_class_names_a_sample_fixes_are_checked_when_the_config_is_read():
    msg = error_of("sample-faces", "generate.class_counts={masked: 200, bogus: 56}")
    assert "--set generate.class_counts: 'generate.class_counts' names 'bogus'" in msg and "masked, unmasked" in msg
    assert load_config("sample-faces", ["generate.class_counts={masked: 200, unmasked: 56}"])


def test_the_config_knows_every_diffaugment_op():
    from kompete.data.diffaugment import OPS

    assert tuple(OPS) == config.DIFFAUGMENT_OPS


def test_names_are_checked_without_torch():
    code = ("import sys\nfrom kompete.config import load_config\nfrom kompete.errors import ConfigError\n"
            "for sets in (['train.loss=bogus'], ['train.diffaugment=x'], ['loss.gamma=1'], ['gan.self_attention=0']):\n"
            "    try:\n        load_config('sample-dogs', sets)\n    except ConfigError:\n        pass\n"
            "    else:\n        raise SystemExit(f'{sets} accepted')\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


# --------------------------------------------------------------------------- lazy regularisation


def test_r1_runs_every_n_d_steps_times_n(monkeypatch):
    loss = losses.build("r1", losses.R1Options(gamma=10.0, every=3))
    calls = []
    monkeypatch.setattr(type(loss), "regularizer", lambda self, D, real: calls.append(loss.d_calls) or torch.ones(()))
    D = lambda x: x.flatten(1).sum(1)  # noqa: E731
    real, fake = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    totals = [loss.discriminator_loss(D, real, fake)[0] for _ in range(7)]
    assert calls == [0, 3, 6] and loss.state_dict() == {"d_calls": 7}
    plain = 2 * torch.nn.functional.softplus(torch.zeros(()))
    assert [round(float(t - plain), 4) for t in totals] == [3.0, 0, 0, 3.0, 0, 0, 3.0]


def test_r1_gives_d_the_input_gradient_penalty():
    loss = losses.build("r1", losses.R1Options(gamma=2.0, every=1))
    w = torch.tensor(3.0, requires_grad=True)
    D = lambda x: w * x.flatten(1).sum(1)  # noqa: E731  (|grad_x D|^2 = 16 w^2 per 16-pixel image)
    real, fake = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    total, *_ = loss.discriminator_loss(D, real, fake)
    assert total.item() == pytest.approx(2 * torch.nn.functional.softplus(torch.zeros(())).item() + 16 * 9)


def test_translation_algorithms_take_their_adversarial_loss_from_the_registry():
    from kompete.algorithms.base import build_task
    from kompete.losses.adversarial import HingeLoss, LSGANLoss
    from kompete.runtime.context import make_context

    spec = load_config("sample-monet").spec
    for model, loss, cls in (("cyclegan", "hinge", HingeLoss), ("cut", "lsgan", LSGANLoss)):
        tiny = load_config("sample-monet", [*[s for s in spec.tiny[1:] if not s.startswith("cyclegan.")],
                                            f"train.model={model}", f"train.loss={loss}"])
        assert type(build_task(tiny, make_context(tiny, "cpu")).loss) is cls


def test_a_lazy_regulariser_resumes_on_its_own_schedule(tmp_path):
    from kompete.algorithms.base import task_class
    from tests.test_algorithm_contract import run, tensors

    spec = load_config("sample-dogs").spec
    cfg = load_config(spec.tiny[0], [*spec.tiny[1:], "train.loss=r1", "loss.every=3", "train.d_steps=2"])
    data = task_class(cfg).load_data(cfg, progress=False)
    straight = run(cfg, data, tmp_path / "a", 3)
    run(cfg, data, tmp_path / "b", 1)
    resumed = run(cfg, data, tmp_path / "b", 3, resume=True)
    assert resumed.task.loss.d_calls == straight.task.loss.d_calls == 6
    a, b = tensors(straight.task.state_dict()), tensors(resumed.task.state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_listed_network_family_is_registered_and_every_registered_one_listed():
    from kompete.algorithms.gan import FAMILIES
    from kompete.models import GAN_NETWORKS

    assert GAN_NETWORKS.names() == sorted(m for f in FAMILIES for m in (f, f"{f}_cond"))


def test_a_config_saved_before_losses_owned_their_options_still_loads():
    cfg = load_config("sample-dogs")
    old = cfg.to_dict()
    del old["loss"]
    old["gan"].update(label_smoothing=0.0, label_noise=0.0, gp_weight=10.0, self_attention=True, pixel_norm=True,
                      minibatch_std=True)  # what every run's config.yaml held
    assert config_hash(config.config_from_dict(old, "old.yaml")) == config_hash(cfg)
    old["gan"]["label_smoothing"] = 0.1
    with pytest.raises(ConfigError, match="'gan.label_smoothing' is now 'loss.label_smoothing'"):
        config.config_from_dict(old, "old.yaml")


# --------------------------------------------------------------------------- layouts


def test_a_layouts_keys_join_the_data_section_and_anothers_are_an_error():
    assert load_config("sample-faces", ["data.crop=random"]).data.crop == "random"
    assert "'data.crop' is an option of folder, not of dogs" in error_of("sample-dogs", "data.crop=random")
    assert "'data.layout' is 'cats'; choose one of: dogs, folder, monet" in error_of("sample-dogs", "data.layout=cats")
    assert not hasattr(load_config("sample-monet").data, "annotations_dir")


def test_every_layout_is_a_torch_free_spec_whose_folders_the_data_stage_finds():
    from kompete import layouts
    from kompete.data import locate

    for spec in layouts.specs():
        keys = {f.name for f in dataclasses.fields(spec.options)}
        assert {key for key, _ in spec.roles.values()} <= keys, spec.name
        assert locate.ROLES[spec.name].keys() == spec.roles.keys() and locate.TRAIN_ROLE[spec.name] == spec.train_role
    code = "import sys; from kompete import layouts; layouts.specs(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
