"""Small synthetic data sets for examples, tests and benchmarks (numpy only, no downloads)."""

import numpy as np

__all__ = ["make_moons"]


def make_moons(n_samples=100, noise=0.1, seed=None):
    """Two interleaving half circles, as scikit-learn's make_moons; labels are -1 and +1.

    Returns ``(X, y)`` with X of shape (n_samples, 2) (float64) and y of shape (n_samples,)
    (int64), the first half labelled -1 (upper moon) and the rest +1 (lower moon).

    >>> X, y = make_moons(100, noise=0.1, seed=0)
    >>> X.shape, y.shape, sorted(set(y.tolist()))
    ((100, 2), (100,), [-1, 1])
    """
    rng = np.random.default_rng(seed)
    n_upper = n_samples // 2
    upper = np.linspace(0.0, np.pi, n_upper)
    lower = np.linspace(0.0, np.pi, n_samples - n_upper)
    X = np.concatenate([
        np.stack([np.cos(upper), np.sin(upper)], axis=1),
        np.stack([1.0 - np.cos(lower), 0.5 - np.sin(lower)], axis=1),
    ])
    if noise:
        X += rng.normal(0.0, noise, X.shape)
    y = np.concatenate([-np.ones(n_upper, dtype=np.int64), np.ones(n_samples - n_upper, dtype=np.int64)])
    return X, y
