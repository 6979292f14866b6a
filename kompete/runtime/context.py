"""Where and how tensors compute: device, mixed precision, memory format, and DDP when torchrun launched us."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import click
import torch
import torch.nn as nn

from kompete.config import Config
from kompete.runtime.device import parse_device


@dataclass
class Context:
    """Device facts every Task and the Trainer share. Build with `make_context(cfg)`."""

    device: torch.device
    amp_dtype: torch.dtype | None = None  # None: fp32
    channels_last: bool = False
    compile_mode: str | None = None  # torch.compile mode ("default", "reduce-overhead"); None: eager
    compile_options: dict[str, Any] = field(default_factory=dict)  # more torch.compile arguments (tests: backend)
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    ddp: bool = False
    notes: list[str] = field(default_factory=list)
    compile_fallbacks: list[str] = field(default_factory=list)  # modules that failed to compile and run eager

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def needs_scaler(self) -> bool:
        """fp16 needs loss scaling; bf16 and fp32 do not."""
        return self.amp_dtype == torch.float16

    def seed_streams(self, seed: int) -> None:
        """Seed noise and augmentation per rank: with one seed, every GPU would draw the same fakes."""
        torch.manual_seed(seed + self.rank)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is a no-op unless fp16 is in use (its state still round-trips)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move to the device, channels_last on CUDA only."""
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """An NCHW batch in the memory format the models expect."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def wrap(self, module: nn.Module) -> Callable:
        """A trained module as the step calls it: DDP-wrapped when distributed, then compiled when asked
        (PyTorch's order: compiling the DDP module lets it split graphs at the gradient buckets)."""
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.local_rank] if self.is_cuda else None
            module = DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
        return self.compiled(module)

    def compiled(self, module: nn.Module) -> Callable:
        """`module` compiled with train.compile's mode, or itself; the plain module keeps the state_dict names."""
        if self.compile_mode is None:
            return module
        mode = None if self.compile_mode == "default" else self.compile_mode
        return CompiledOrEager(module, torch.compile(module, mode=mode, **self.compile_options), self)

    def mark_step(self) -> None:
        """Tell CUDA graphs a new training step begins, so they may reuse the last step's output memory."""
        if self.compile_mode == "reduce-overhead" and self.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()

    def compile_failed(self, module: nn.Module, exc: BaseException) -> None:
        if not self.compile_fallbacks and self.is_main:
            root = exc
            while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
                root = inner  # Dynamo wraps the compiler's own error (BackendCompilerFailed)
            first = (str(root).strip().splitlines() or [""])[0][:200]
            click.echo(f"warning: torch.compile failed for {type(module).__name__} ({type(root).__name__}: {first}); "
                       "training goes on without compiling", err=True)
        self.compile_fallbacks.append(type(module).__name__)

    def barrier(self) -> None:
        if self.ddp:
            import torch.distributed as dist

            dist.barrier()

    def agree(self, flags: list[bool]) -> list[bool]:
        """Each flag true on any rank becomes true on all (one all-reduce); unchanged without DDP."""
        if not self.ddp:
            return flags
        import torch.distributed as dist

        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v > 0.5) for v in t.tolist()]

    def close(self) -> None:
        if self.ddp:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class CompiledOrEager:
    """Calls the compiled module; if compiling it fails (no Triton or C compiler in a Kaggle image, an
    unsupported op), warns once through the context and calls the plain module from then on."""

    def __init__(self, module: nn.Module, compiled: Callable, ctx: Context):
        self.module, self.compiled, self.ctx = module, compiled, ctx
        self.failed = False
        self.ran = False  # compiling happens at the first call; a later error (out of memory) is not a compiler's

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.module(*args, **kwargs)
        if self.ran:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure; an eager error re-raises below
            self.failed = True
            self.ctx.compile_failed(self.module, exc)
            return self.module(*args, **kwargs)
        self.ran = True
        return out


def compile_mode(setting: bool | str) -> str | None:
    """torch.compile's mode for a train.compile value: None (eager), "default", or the named mode."""
    if setting is False:
        return None
    return "default" if setting is True else str(setting)


def amp_dtype_for(capability: tuple[int, int]) -> torch.dtype:
    """bf16 where the tensor cores do it natively (Ampere, sm_80, and later), else fp16 with loss scaling.

    `torch.cuda.is_bf16_supported()` also says yes on a T4 (sm_75), where bf16 is emulated and slow.
    """
    return torch.bfloat16 if tuple(capability) >= (8, 0) else torch.float16


def make_context(cfg: Config, device: str | None = None) -> Context:
    """The best device available (or `device`), AMP and channels_last on CUDA, DDP under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = parse_device(device, local_rank)  # a bare "cuda" gets its index: set_device needs one
    ctx = Context(device=dev, rank=rank, world_size=world, local_rank=local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        ctx.channels_last = True
        ctx.compile_mode = compile_mode(cfg.train.compile)
        if cfg.train.amp:
            ctx.amp_dtype = amp_dtype_for(torch.cuda.get_device_capability(dev))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        ctx.ddp = True
    ctx.notes.append(f"device {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""))
    ctx.notes.append(f"precision {ctx.amp_dtype or 'fp32'}" + (", channels_last" if ctx.channels_last else "")
                     + (f", torch.compile {ctx.compile_mode}" if ctx.compile_mode else ""))
    if ctx.ddp:
        ctx.notes.append(f"DDP rank {rank}/{world}")
    return ctx


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
