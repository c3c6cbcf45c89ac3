"""PNG plots of echo-bench runs: a value over time and its distribution (CDF)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_series"]


def plot_series(
    path: str | Path,
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]],
    *,
    x_label: str,
    y_label: str,
    compare: Sequence[tuple[str, Sequence[float], Sequence[float | None]]] = (),
) -> None:
    """Plot each (label, x, y) over x on the left and the CDF of all y on the right.

    A y of None (lost ping, missed burst) is drawn as a red cross on the x axis. `compare`
    (e.g. the net RTT beside the RTT) is drawn thin and dashed, with its own dashed CDF.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (over_time, cdf) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=[3, 2])
    pooled: list[float] = []
    lost_label = "lost"
    for label, xs, ys in series:
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        lost = [x for x, y in zip(xs, ys, strict=True) if y is None]
        if points:
            px, py = zip(*points, strict=True)
            over_time.plot(px, py, marker=".", markersize=3, linewidth=0.7, label=label)
            pooled += py
            if len(series) > 1:
                cdf.step(*_cdf(py), where="post", linewidth=0.7, alpha=0.6)
        if lost:
            over_time.plot(lost, [0] * len(lost), "x", color="red", label=lost_label)
            lost_label = None
    compared: list[float] = []
    for label, xs, ys in compare:
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            px, py = zip(*points, strict=True)
            over_time.plot(px, py, linestyle="--", linewidth=0.6, label=label)
            compared += py
    if compared:
        cdf.step(*_cdf(compared), where="post", color="grey", linestyle="--", linewidth=1.2)
    over_time.set_xlabel(x_label)
    over_time.set_ylabel(y_label)
    over_time.set_ylim(0, max(pooled) * 1.1 if pooled else 1)
    over_time.grid(alpha=0.3)
    if len(series) <= 10:
        over_time.legend(fontsize="small")
    if pooled:
        cdf.step(*_cdf(pooled), where="post", color="black", linewidth=1.5)
        for q, height in ((50, 0.02), (95, 0.1), (99, 0.18)):
            value = np.percentile(pooled, q)
            cdf.axvline(value, linestyle=":", color="grey")
            cdf.annotate(f" p{q}", (value, height), fontsize="small")
    cdf.set_xlabel(y_label)
    cdf.set_ylabel("fraction ≤ x")
    cdf.set_ylim(0, 1.02)
    cdf.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def _cdf(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF as step-plot coordinates, starting from 0."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    y = np.arange(1, len(x) + 1) / len(x)
    return np.concatenate(([x[0]], x)), np.concatenate(([0.0], y))
