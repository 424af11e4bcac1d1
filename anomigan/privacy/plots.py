"""Figures only: each function takes numbers and returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _finish(fig: Figure, axes: np.ndarray, title: str) -> Figure:
    """A panel figure's last steps: legend on the first panel, the title, a tight layout."""
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], title: str
) -> Figure:
    """Counts of (true, predicted) classes on the test split."""
    k = len(classes)
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[int(t), int(p)] += 1
    fig, ax = plt.subplots(figsize=(3.2 + 0.4 * k, 3 + 0.4 * k))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            colour = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def loss_curves_figure(history: Mapping[str, Sequence[float]], steps: Sequence[float]) -> Figure:
    """The paper's Fig. 4: every logged loss against the training step."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in history.items():
        ax.plot(steps[: len(values)], values, label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("AnomiGAN training losses")
    fig.tight_layout()
    return fig


def pareto_front_figure(
    agreement: Sequence[float],
    privacy: Sequence[float],
    corr_mad: Sequence[float],
    on_front: Sequence[bool],
    privacy_name: str,
    min_agreement: float,
    chosen: int | None = None,
    references: Mapping[str, tuple[float, float]] | None = None,
) -> Figure:
    """Tuning trials: privacy figure (lower is better) against prediction agreement, coloured
    by corr_matrix_mad; the Pareto front ringed, the promotion bar dashed, the promoted trial a
    star, the references (name -> (privacy, agreement)) as labelled crosses."""
    fig, ax = plt.subplots(figsize=(6, 4))
    x, y = np.asarray(privacy, float), np.asarray(agreement, float)
    c, front = np.asarray(corr_mad, float), np.asarray(on_front, bool)
    if len(x):
        points = ax.scatter(x, y, c=c, cmap="viridis_r", s=28, zorder=2)
        fig.colorbar(points, ax=ax, label="corr_matrix_mad")
        ax.scatter(
            x[front], y[front], s=90, facecolors="none", edgecolors="red", label="Pareto front"
        )
        if chosen is not None:
            ax.scatter(
                x[chosen],
                y[chosen],
                marker="*",
                s=260,
                c="gold",
                edgecolors="black",
                zorder=3,
                label="promoted",
            )
    else:
        ax.text(0.5, 0.5, "no completed trial", ha="center", va="center", transform=ax.transAxes)
    for i, (name, (rx, ry)) in enumerate((references or {}).items()):
        ax.scatter([rx], [ry], marker="x", s=60, c="black", zorder=3,
                   label="references (same guard)" if i == 0 else None)  # fmt: skip
        ax.annotate(name, (rx, ry), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.axhline(min_agreement, ls="--", c="grey", lw=1, label=f"min agreement {min_agreement}")
    ax.set_xlabel(f"{privacy_name} (lower is better)")
    ax.set_ylabel("prediction agreement")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Tuning trials ({len(x)} completed, {int(front.sum())} on the front)")
    fig.tight_layout()
    return fig


METHOD_STYLE = {
    "anomigan": ("tab:blue", "o"),
    "anomigan_guard_off": ("tab:cyan", "v"),
    "anomigan_noise_off": ("navy", "^"),
    "laplace_dp": ("tab:red", "s"),
    "laplace_dp_guard": ("tab:orange", "s"),
    "class_copula": ("tab:purple", "*"),
    "copula_blend": ("tab:pink", "P"),
    "score_copula": ("tab:brown", "h"),
    "score_bin_copula": ("tab:olive", "p"),
    "identity": ("black", "X"),
    "class_prototype": ("tab:green", "D"),
}


def privacy_parameter_figure(
    series: Mapping[str, tuple[Sequence[float], Mapping[str, Sequence[float]]]],
    metric_names: Sequence[str] = ("correlation", "anon_accuracy", "anon_auc"),
    xlabel: str = "privacy parameter (δ for AnomiGAN, λ for DP)",
    title: str = "",
) -> Figure:
    """The paper's Figs. 5, 6 and 8: each metric against the privacy parameter, one line per
    series (label -> (parameter values, metric -> values))."""
    fig, axes = plt.subplots(1, len(metric_names), figsize=(4.2 * len(metric_names), 3.4))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metric_names, strict=True):
        for label, (xs, ys) in series.items():
            method = label.split(" ")[0]
            colour, marker = METHOD_STYLE.get(method, (None, "o"))
            ax.plot(xs, ys[metric], marker=marker, color=colour, label=label, lw=1.2, ms=4)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    return _finish(fig, axes, title)


def correlation_heatmaps_figure(
    original: np.ndarray, anonymized: Mapping[str, np.ndarray], title: str = ""
) -> Figure:
    """The paper's Fig. 7: feature-correlation matrices of original and anonymised records."""
    panels = {"original": np.asarray(original, float)}
    panels.update({k: np.asarray(v, float) for k, v in anonymized.items()})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6))
    axes = np.atleast_1d(axes)
    image: Any = None  # the last panel's image: the colour bar's scale
    for ax, (name, m) in zip(axes, panels.items(), strict=True):
        image = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="Pearson r")
    if title:
        fig.suptitle(title)
    return fig


def frontier_figure(
    points: Sequence[Mapping],
    privacy_metric: str,
    utility_metrics: Sequence[str] = ("prediction_agreement", "tstr_accuracy"),
    baseline: float | None = None,
    baseline_label: str = "random guess",
    title: str = "",
) -> Figure:
    """Privacy-utility frontier: each setting as a point (x: the attack's success, lower is more
    private; y: a utility figure), one line per method, the random baseline as a dashed line.
    `points` are dicts with `method`, `label` and `metrics`; a metric's `_ci_low`/`_ci_high`
    companions, when present, become horizontal error bars."""
    fig, axes = plt.subplots(1, len(utility_metrics), figsize=(5 * len(utility_metrics), 3.8))
    axes = np.atleast_1d(axes)
    methods = list(dict.fromkeys(p["method"] for p in points))
    for ax, utility in zip(axes, utility_metrics, strict=True):
        for method in methods:
            mine = [p for p in points if p["method"] == method]
            mine = [p for p in mine if privacy_metric in p["metrics"] and utility in p["metrics"]]
            if not mine:
                continue
            mine.sort(key=lambda p: p["metrics"][privacy_metric])
            xs = np.array([p["metrics"][privacy_metric] for p in mine])
            ys = np.array([p["metrics"][utility] for p in mine])
            colour, marker = METHOD_STYLE.get(method, (None, "o"))
            lo = [p["metrics"].get(f"{privacy_metric}_ci_low") for p in mine]
            hi = [p["metrics"].get(f"{privacy_metric}_ci_high") for p in mine]
            xerr = None
            if all(v is not None for v in lo + hi):
                xerr = np.clip(np.vstack([xs - np.array(lo), np.array(hi) - xs]), 0, None)
            ax.errorbar(
                xs,
                ys,
                xerr=xerr,
                marker=marker,
                color=colour,
                label=method,
                lw=1,
                ms=5,
                capsize=2,
            )
        if baseline is not None:
            ax.axvline(baseline, color="grey", ls="--", lw=1, label=baseline_label)
        ax.set_xlabel(f"{privacy_metric} (lower = more private)")
        ax.set_ylabel(utility + (" (lower = better)" if utility == "corr_matrix_mad" else ""))
        ax.grid(alpha=0.3)
    return _finish(fig, axes, title)
