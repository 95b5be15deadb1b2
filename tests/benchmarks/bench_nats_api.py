"""The official NATS-Bench API against nas-harness on the same three architectures.

The official fast-mode folder in ``../shared/data/nb201/NATS-tss-v1_0-3ffb9-simple`` holds
the files of architectures 0, 11 and 284 (and every architecture's string), which is enough
for ``nats_bench.create(..., fast_mode=True)`` to answer queries about those three. Both
sides answer the cifar10-valid validation accuracy at 200 epochs; the test checks they agree.
Needs ``pip install nats_bench`` (skipped otherwise). Run: see README, "Benchmarks".
"""


import pytest

IDX = (0, 11, 284)


@pytest.fixture(scope="module")
def nats(shared_data):
    nats_bench = pytest.importorskip("nats_bench")
    api = nats_bench.create(str(shared_data / "nb201" / "NATS-tss-v1_0-3ffb9-simple"), "tss",
                            fast_mode=True, verbose=False)
    for i in IDX:  # the first query of an architecture loads its file; measure the cached path
        api.get_more_info(i, "cifar10-valid", hp="200", is_random=False)
    return api


@pytest.fixture(scope="module")
def ours(nb201_cifar10):
    return nb201_cifar10


def test_same_answers(nats, ours):
    for i in IDX:
        official = nats.get_more_info(i, "cifar10-valid", hp="200", is_random=False)["valid-accuracy"]
        # our table here is the shared CSV, which prints percentages with 6 decimals
        assert ours.query_index(i).observation.value * 100 == pytest.approx(official, abs=5e-7)


def test_official_get_more_info(benchmark, nats):
    it = iter(IDX * 1_000_000)
    benchmark(lambda: nats.get_more_info(next(it), "cifar10-valid", hp="200", is_random=False))


def test_ours_query_same_archs(benchmark, ours):
    archs = [ours.space.arch(i) for i in IDX]
    it = iter(archs * 10_000_000)
    benchmark(lambda: ours.query(next(it)))
