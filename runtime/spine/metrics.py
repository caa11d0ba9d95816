"""Honest numbers, torch-free: accuracy with its 95% Wilson interval and image count, expected
calibration error, and the temperature that calibrates a model's scores. Training, export,
benchmarks and the runtime all print accuracy through `format_accuracy`, so every figure the
toolkit shows says how sure it is."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials. Unlike the normal approximation it stays
    inside [0, 1] and is not degenerate at 0/n or n/n, which is where good classifiers live."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def format_accuracy(k: int, n: int) -> str:
    """'99.25% (97.8-99.7, n=400)': the figure, its 95% Wilson interval, the image count."""
    if n <= 0:
        return "n/a (n=0)"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.2f}% ({100 * lo:.1f}\u2013{100 * hi:.1f}, n={n})"


def accuracy_record(k: int, n: int) -> dict[str, float | int]:
    """The same figure for JSON reports: accuracy, interval bounds, counts."""
    lo, hi = wilson(k, n)
    return {"accuracy": k / n if n else 0.0, "ci95_low": lo, "ci95_high": hi, "correct": k, "n": n}


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) scores in their own dtype: the one copy (the runtime's scores,
    export parity in float64, calibration)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_t(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / T in float64 (calibration arithmetic wants the precision)."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence, `bins` equal-width bins (Guo et al. 2017):
    the image-weighted mean |accuracy - confidence| over the bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total / max(1, len(labels)))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T > 0 that minimises validation NLL of softmax(logits / T) (Guo et al. 2017). The NLL is
    unimodal in log T, so a golden-section search over [lo, hi] finds it without torch."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(80):  # shrinks the bracket by 0.618^80: far below any useful precision
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))
