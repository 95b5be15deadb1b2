"""Speed of the statistics behind reports and figures (run: see README, "Benchmarks").

Sizes of a LaNAS Fig. 5 study: 100 seeds per cell, curves on the ~1,600-point sample grid
of a 15,625-architecture space, 2,000 bootstrap resamples.
"""

import numpy as np

from harness.curves import sample_grid
from harness.statistics import curve_bands, km_quantile_batch, mann_whitney, samples_to_optimum


def test_curve_bands_100_runs(benchmark):
    rng = np.random.default_rng(0)
    V = np.maximum.accumulate(rng.random((100, len(sample_grid(15_625)))), axis=1)
    benchmark(lambda: curve_bands(V, n_boot=2000))


def test_km_quantiles_of_2000_resamples(benchmark):
    rng = np.random.default_rng(0)
    T = rng.integers(1, 15_625, size=(2000, 100)).astype(float)
    E = rng.random((2000, 100)) < 0.8
    benchmark(lambda: km_quantile_batch(T, E, 0.5))


def test_samples_to_optimum_with_cis(benchmark):
    rng = np.random.default_rng(0)
    v = rng.integers(1, 15_625, size=100).astype(float)
    cens = rng.random(100) < 0.2
    benchmark(lambda: samples_to_optimum(np.where(cens, np.nan, v), cens, 15_625, n_boot=2000))


def test_curve_bands_with_undefined_points(benchmark):
    """Runs that ended before the grid's end (NaN): numpy's nanquantile went column by column
    here (seconds for one cell); nanquantile_columns is one vectorised pass."""
    rng = np.random.default_rng(0)
    V = np.maximum.accumulate(rng.random((100, len(sample_grid(15_625)))), axis=1)
    V[rng.random(V.shape) < 0.1] = np.nan
    benchmark(lambda: curve_bands(V, n_boot=2000))


def test_mann_whitney_with_ties_100_runs(benchmark):
    rng = np.random.default_rng(0)
    a = np.minimum(rng.integers(1, 2000, 100), 1000).astype(float)
    b = np.minimum(rng.integers(1, 3000, 100), 1000).astype(float)
    benchmark(lambda: mann_whitney(a, b, "greater"))
