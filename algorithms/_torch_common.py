"""Helpers shared by the torch-based learned search strategies (reinforce, cadam, nao, nases).

Why a shared module: all four must (a) keep torch reproducible without touching torch's
global generator, which other code in the same worker process may use; (b) run on one
thread, because the runner executes runs in parallel worker processes; (c) turn token
sequences that the space rejects (``from_tokens`` raises :class:`InvalidArchitecture`)
into a documented penalty instead of a crash.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import numpy as np

from oracles.errors import InvalidArchitecture, UserError
from oracles.space import FiniteSpace, SearchSpace

from .base import DONE, torch_seed

T = TypeVar("T")


def torch_setup(rng: np.random.Generator, device: str):
    """Single-threaded torch, a private generator seeded from the run's ``rng``, the device.

    Returns ``(torch, generator, device, seed)``. The generator lives on the CPU: every
    random draw is made there and moved, so a run gives the same trajectory whatever
    ``device`` is (up to floating-point differences of the device's kernels).
    """
    try:
        import torch
    except ImportError:
        raise UserError("this algorithm needs PyTorch: pip install 'nas-harness[learned]'") from None
    torch.set_num_threads(1)
    seed = torch_seed(rng)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown torch device {device!r}; use e.g. cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available; use device=cpu")
    return torch, gen, dev, seed


class Diverged(UserError):
    """A learned strategy's model produced non-finite numbers, almost always because a
    setting (a learning rate, a scale) is far too large. Raised where the numbers are used,
    with the setting to change, instead of letting torch fail deep inside a sampler."""


def require_finite(values, what: str, hint: str) -> None:
    """Raise :class:`Diverged` ("``what`` became non-finite: ``hint``") unless all finite."""
    import torch
    if not bool(torch.isfinite(torch.as_tensor(values)).all()):
        raise Diverged(f"{what} became non-finite: {hint}")


def build_seeded(seed: int, build: Callable[[], T]) -> T:
    """Call ``build()`` (which creates torch modules) with torch's global RNG forked and
    seeded with ``seed``, so weight initialisation is reproducible and leaves the global
    state as it was."""
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def uniform(gen, shape, low=0.0, high=1.0):
    """U(low, high) draws from the private generator (CPU)."""
    import torch
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float32)


def try_arch(space: SearchSpace, tokens: Sequence[int]):
    """``space.from_tokens(tokens)``, or ``None`` when the space rejects the sequence."""
    try:
        return space.from_tokens([int(t) for t in tokens])
    except InvalidArchitecture:
        return None


def random_unseen(space: SearchSpace, rng: np.random.Generator, seen: set[str], tries: int = 1000):
    """A uniformly random architecture whose identity is not in ``seen``.

    Used as the documented fallback when a learned sampler keeps proposing invalid or
    already-evaluated architectures. On a finite space whose every architecture has been
    seen it returns :data:`~algorithms.base.DONE` (the search is over), as random search does.
    """
    for _ in range(tries):
        a = space.sample(rng)
        if space.identity(a) not in seen:
            return a
    if isinstance(space, FiniteSpace):
        if len(seen) >= space.size:
            return DONE  # every architecture of the space evaluated
        for i in rng.permutation(space.size):
            a = space.arch(int(i))
            if space.identity(a) not in seen:
                return a
        return DONE
    return space.sample(rng)


def segment_offsets(decisions: Sequence[int]) -> np.ndarray:
    """Start of each decision's block in a concatenated one-hot vector (length len+1)."""
    return np.concatenate([[0], np.cumsum(decisions)]).astype(np.int64)


def one_hot_tokens(tokens: np.ndarray, decisions: Sequence[int]) -> np.ndarray:
    """``(n, sum(decisions))`` float32 concatenated one-hot rows of token matrices."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, len(decisions))
    off = segment_offsets(decisions)
    out = np.zeros((len(tokens), int(off[-1])), dtype=np.float32)
    out[np.arange(len(tokens))[:, None], off[:-1][None, :] + tokens] = 1.0
    return out


def segment_argmax(x: np.ndarray, decisions: Sequence[int]) -> np.ndarray:
    """Per-decision argmax of concatenated score rows -> ``(n, len(decisions))`` tokens."""
    x = np.asarray(x).reshape(-1, int(sum(decisions)))
    off = segment_offsets(decisions)
    return np.stack([np.argmax(x[:, off[i]:off[i + 1]], axis=1) for i in range(len(decisions))],
                    axis=1)


def adam(params, **kwargs):
    """``torch.optim.Adam`` using the fused kernel where this torch has it (about 40% less
    time per step on the small networks used here), else the default implementation."""
    import torch
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, **kwargs)


def part_tensors(xy, max_images: int | None, device, dtype):
    """A supernet data part ``(images, labels)`` as tensors on ``device`` (images in
    ``dtype``), cut to its first ``max_images`` (None: all): how every one-shot method
    (DARTS, GDAS, ENAS, RSPS, DDAS) holds its training and search-validation parts."""
    import torch
    x, y = xy
    if max_images is not None:
        x, y = x[:max_images], y[:max_images]
    return (torch.as_tensor(np.ascontiguousarray(x)).to(device, dtype),
            torch.as_tensor(np.ascontiguousarray(y)).to(device))
