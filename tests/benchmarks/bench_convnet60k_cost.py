"""Cost of training ConvNet-60K networks on CIFAR-10-shaped input on this CPU (one thread).

Random tensors of CIFAR-10's shape (3x32x32, 10 classes) stand in for the images: only the
time is measured. One training step (forward, backward, Adam update) with the ``cifar10``
default recipe's network (Conv-BN-ReLU layers, global average pooling, linear), timed for
the smallest, a median-FLOPs and the largest network of the ``convnet60k`` preset, then
scaled to the recipe (45,000 training images x 100 epochs, LaNAS appendix 6.1) and, by
FLOPs, to the average network of the space. Results are in docs/convnet-digits.md.

Run: ``python tests/benchmarks/bench_convnet60k_cost.py`` (prints the table), or with the
other benchmarks: ``python -m pytest tests/benchmarks -o addopts="" --benchmark-only``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

BATCH = 16


def _setup(layers, batch=BATCH):
    import torch
    import torch.nn.functional as F

    from oracles.collectors.train import build_network
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_network(layers, 3, 10, batch_norm=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def representative():
    """(label, layers) for the smallest, median-FLOPs and largest convnet60k networks, and
    the space's mean FLOPs."""
    from oracles.collectors.train import count_flops
    from oracles.convnet_space import ConvNetSpace
    space = ConvNetSpace.from_preset("convnet60k")
    # FLOPs of every network, vectorised over the enumeration (layer options -> K, C)
    opts = space.options_all()
    present = opts >= 0
    ki, ci = np.divmod(np.where(present, opts, 0), len(space.channels))
    k = np.where(present, np.asarray(space.kernels)[ki], 0)
    c = np.where(present, np.asarray(space.channels)[ci], 0)
    cin = np.concatenate([np.full((space.size, 1), 3), c[:, :-1]], axis=1)
    flops = (1024 * k * k * cin * c).sum(axis=1) + c[np.arange(space.size), present.sum(axis=1) - 1] * 10
    median = int(np.argsort(flops)[space.size // 2])
    picks = [("smallest", space.arch(0)), ("median FLOPs", space.arch(median)),
             ("largest", space.arch(space.size - 1))]
    for _, layers in picks:
        assert count_flops(layers, (3, 32, 32), 10) == flops[space.index(layers)]
    return picks, float(flops.mean()), space


@pytest.mark.parametrize("which", [0, 1, 2])
def test_convnet60k_train_step(benchmark, which):
    picks, _, _ = representative()
    step = _setup(picks[which][1])
    step()
    benchmark.pedantic(step, rounds=3, iterations=1)


def main():
    from oracles.collectors.train import DEFAULT_RECIPES, count_flops
    picks, mean_flops, space = representative()
    recipe = DEFAULT_RECIPES["cifar10"]
    images = 45_000 * recipe.epochs
    rows = []
    for label, layers in picks:
        step = _setup(layers)
        step()  # warm-up
        times = []
        for _ in range(3):
            # CPU time of this process: one thread, so other processes on the machine do not count
            t0 = time.process_time()
            step()
            times.append(time.process_time() - t0)
        per_image = min(times) / BATCH
        flops = count_flops(layers, (3, 32, 32), 10)
        rows.append((label, space.to_string(layers), flops, per_image))
        print(f"{label:13s} {space.to_string(layers):40s} {flops / 1e6:8.1f} MMAC/img  "
              f"{per_image * 1e3:8.2f} ms/img  -> {per_image * images / 3600:8.1f} h per network "
              f"({recipe.epochs} epochs x 45k images)")
    per_mac = rows[1][3] / rows[1][2]
    avg = per_mac * mean_flops * images
    print(f"space mean {mean_flops / 1e6:.1f} MMAC/img -> ~{avg / 3600:.1f} h per network on average, "
          f"~{avg * space.size / 3600 / 24 / 365:.1f} core-years for all {space.size} networks")


if __name__ == "__main__":
    main()
