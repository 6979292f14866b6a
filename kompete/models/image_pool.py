"""History of generated images for the discriminator updates (Shrivastava et al. 2017, used by CycleGAN).

The discriminator sees, for each new fake, with probability 1/2 an older fake from the pool (which
the new one then replaces), so it does not chase the generator's latest move. The pool lives on
the fakes' device as one tensor; the coin flips come from a CPU generator and are resolved on the
host, so a query costs one gather and one scatter and never waits for the GPU.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.filled = 0
        self.buffer: torch.Tensor | None = None
        self.rng = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A batch the same shape as `images`, each a new fake or a stored one, as the paper's pool does."""
        if self.size == 0:
            return images.detach()
        images = images.detach()
        n = images.shape[0]
        if self.buffer is None:
            self.buffer = torch.empty((self.size, *images.shape[1:]), dtype=images.dtype, device=images.device)
        images = images.to(self.buffer.dtype)
        # Replay the paper's one-image-at-a-time rule on the host: `holds[k] = i` once slot k has
        # taken the i-th new image; a slot not in `holds` still has its previous content.
        holds: dict[int, int] = {}
        picks: list[int] = []  # for each output: index into cat([buffer, images])
        coins = torch.rand(n, generator=self.rng).tolist()
        slots = torch.randint(self.size, (n,), generator=self.rng).tolist()
        for i in range(n):
            if self.filled < self.size:
                holds[self.filled] = i
                self.filled += 1
                picks.append(self.size + i)
            elif coins[i] > 0.5:
                k = slots[i]
                picks.append(self.size + holds[k] if k in holds else k)
                holds[k] = i
            else:
                picks.append(self.size + i)
        pool_and_new = torch.cat([self.buffer, images])
        out = pool_and_new[torch.tensor(picks).to(images.device, non_blocking=True)]
        if holds:  # every slot touched now holds one of the new images
            dest = torch.tensor(list(holds)).to(images.device, non_blocking=True)
            src = torch.tensor([self.size + j for j in holds.values()]).to(images.device, non_blocking=True)
            self.buffer[dest] = pool_and_new[src]
        return out

    def state_dict(self) -> dict:
        return {"size": self.size, "filled": self.filled, "rng": self.rng.get_state(),
                "buffer": None if self.buffer is None else self.buffer[: self.filled].cpu()}

    def load_state_dict(self, state: dict, device: torch.device | str | None = None) -> None:
        if state["size"] != self.size:
            raise ValueError(f"checkpoint pool holds {state['size']} images; this pool {self.size}")
        self.filled = state["filled"]
        self.rng.set_state(state["rng"])
        saved = state["buffer"]
        if saved is None:
            self.buffer = None
        else:
            self.buffer = torch.zeros((self.size, *saved.shape[1:]), dtype=saved.dtype, device=device)
            self.buffer[: self.filled] = saved.to(device)
