"""torch.compile in training: the networks capture whole (no graph breaks), compiled steps match eager ones,
a failing compiler falls back to eager with one warning, and the attention takes a fused SDPA kernel.

The CPU checks compile with the `aot_eager` backend: Dynamo's capture and AOTAutograd's forward/backward
split, the parts a graph break or a host sync would show in, without minutes of C++ code generation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kompete import models  # noqa: F401  (fills the gan algorithm's network registry)
from kompete.algorithms.base import IndexSampler, build_task
from kompete.config import load_config
from kompete.errors import ConfigError
from kompete.models.sngan import SelfAttention
from kompete.runtime.context import compile_mode, make_context

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["data.image_size=32", "train.g_channels=8", "train.d_channels=8", "gan.z_dim=16", "train.batch_size=8",
         "gan.self_attention=true", "gan.ema_decay=0.9"]


def gan_task(model: str, compile_options: dict | None = None):
    cfg = load_config("sample-dogs", [*SMALL, f"train.model={model}"])
    ctx = make_context(cfg, "cpu")
    if compile_options is not None:
        ctx.compile_mode, ctx.compile_options = "default", compile_options
    return build_task(cfg, ctx, None, {"n_classes": 4})


def losses_of(task, steps: int = 3) -> list[dict[str, float]]:
    gen = torch.Generator().manual_seed(5)
    out = []
    for _ in range(steps):
        x = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1
        y = torch.randint(0, 4, (8,), generator=gen)
        task.ctx.mark_step()
        out.append({k: float(v) for k, v in task.step((x, y)).items()})
    return out


@pytest.mark.parametrize("model", ["dcgan_cond", "sngan_cond"])
def test_compiled_steps_give_the_eager_losses(model):
    eager = losses_of(gan_task(model))
    task = gan_task(model, {"backend": "aot_eager", "fullgraph": True})  # fullgraph: a graph break is an error
    compiled = losses_of(task)
    assert task.ctx.compile_fallbacks == []  # it really ran compiled
    for e, c in zip(eager, compiled):
        assert e.keys() == c.keys()
        for k in e:
            assert c[k] == pytest.approx(e[k], rel=1e-4, abs=1e-5), k


def broken_backend(graph_module, example_inputs):
    raise RuntimeError("Cannot find a working triton installation")


def test_a_failing_compiler_warns_once_and_training_goes_on_eager(capsys):
    eager = losses_of(gan_task("dcgan_cond"), steps=2)
    task = gan_task("dcgan_cond", {"backend": broken_backend})
    fallback = losses_of(task, steps=2)
    err = capsys.readouterr().err
    assert err.count("torch.compile failed") == 1 and "triton" in err
    assert set(task.ctx.compile_fallbacks) == {"Generator", "Discriminator"}
    assert fallback == eager


def test_an_error_of_the_model_itself_still_surfaces():
    task = gan_task("dcgan_cond", {"backend": broken_backend})
    with pytest.raises(RuntimeError):
        task.G_train(torch.randn(2, 3), torch.zeros(2, dtype=torch.long))  # wrong noise size: eager fails too


@pytest.mark.parametrize("value, mode", [(False, None), (True, "default"), ("reduce-overhead", "reduce-overhead")])
def test_train_compile_takes_false_true_or_reduce_overhead(value, mode):
    cfg = load_config("sample-dogs", [f"train.compile={str(value).lower() if isinstance(value, bool) else value}"])
    assert cfg.train.compile == value and type(cfg.train.compile) is type(value)
    assert compile_mode(cfg.train.compile) == mode
    assert make_context(cfg, "cpu").compile_mode is None  # CUDA only: on a CPU, minutes of compiling for little


@pytest.mark.parametrize("bad", ["1", "max", "default"])
def test_a_bad_train_compile_names_the_key_and_the_choices(bad):
    with pytest.raises(ConfigError, match=r"train\.compile.*false, true, reduce-overhead"):
        load_config("sample-dogs", [f"train.compile={bad}"])


@pytest.mark.parametrize("channels", [16, 64, 128])
def test_self_attention_feeds_a_fused_sdpa_kernel_and_keeps_its_maths(channels):
    torch.manual_seed(0)
    attn = SelfAttention(channels).eval()
    x = torch.randn(2, channels, 8, 8)
    q, k, v = attn.attention_inputs(x)
    assert q.dim() == k.dim() == v.dim() == 4 and q.shape == k.shape == v.shape
    assert int(torch._fused_sdp_choice(q, k, v, scale=1.0)) != 0  # 0 is the unfused maths fallback
    # the reference: softmax(q k^T) v on the unpadded c/8 projections (scale 1, as SAGAN)
    with torch.no_grad():
        qs, ks, vs = (m(x).flatten(2).transpose(1, 2) for m in (attn.query, attn.key, attn.value))
        ref = torch.softmax(qs @ ks.transpose(1, 2), -1) @ vs
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1)
    assert torch.allclose(out, ref, atol=1e-5)


def test_the_sampler_keeps_its_permutation_on_the_data_device_and_resumes():
    a = IndexSampler(10, 3, seed=1, device="cpu")
    first = [a.next().tolist() for _ in range(4)]  # crosses an epoch
    state = a.state_dict()
    b = IndexSampler(10, 3, seed=99)
    b.load_state_dict(state)
    assert [b.next().tolist() for _ in range(4)] == [a.next().tolist() for _ in range(4)]
    assert a.epoch == 2 and sorted(sum(first[:3], [])) == sorted(set(sum(first[:3], [])))


def test_an_error_after_a_compiled_run_is_not_taken_for_a_compiler_failure():
    from kompete.runtime.context import CompiledOrEager

    ctx = make_context(load_config("sample-dogs"), "cpu")
    calls = []

    def compiled(x):  # compiles fine, then runs out of memory on a later call
        calls.append(x)
        if len(calls) > 1:
            raise RuntimeError("CUDA out of memory")
        return x

    run = CompiledOrEager(torch.nn.Identity(), compiled, ctx)
    assert run(1) == 1
    with pytest.raises(RuntimeError, match="out of memory"):
        run(2)
    assert ctx.compile_fallbacks == [] and not run.failed
