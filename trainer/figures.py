"""Figures every training run writes (PNG, matplotlib + torchvision.utils.make_grid)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from models.shapes import IMAGE_SHAPE  # noqa: E402


def _save(fig, path: Path) -> None:
    """Write the figure as PNG; its title also goes into the file's "Title" text chunk, where tests
    and tools can read which run a figure belongs to without looking at the pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    title = fig.axes[0].get_title() if fig.axes else ""
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Title": title})
    plt.close(fig)


def _show_grid(images: torch.Tensor, path: Path, title: str, nrow: int, figsize: tuple[float, float]) -> None:
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def reconstruction_strip(originals: torch.Tensor, reconstructions: torch.Tensor, path: Path, title: str) -> None:
    """Originals in the top row, their reconstructions below. Both (N, 1, 28, 28) in [0, 1]."""
    n = originals.shape[0]
    _show_grid(torch.cat([originals, reconstructions]), path, title, nrow=n, figsize=(n * 0.7, 1.8))


def sample_grid(samples: torch.Tensor, path: Path, title: str, nrow: int = 8) -> None:
    _show_grid(samples, path, title, nrow=nrow, figsize=(5, 5.3))


def interpolation_strips(rows: torch.Tensor, path: Path, title: str) -> None:
    """rows: (R, S, 1, 28, 28): R interpolations of S steps each."""
    r, s = rows.shape[:2]
    _show_grid(rows.reshape(r * s, *IMAGE_SHAPE), path, title, nrow=s, figsize=(s * 0.6, r * 0.7 + 0.4))


def vae_loss_curves(history: dict, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["epoch"], history["train_loss"], label="train")
    ax.plot(history["epoch"], history["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative ELBO (nats / image)")
    ax.set_title(f"{title}: loss per epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def _smooth(values: list[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) < window or window <= 1:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def _loss_curves(history: dict, series: tuple[tuple[str, str], ...], path: Path, title: str,
                 log: bool = False) -> None:
    """Losses per step, each a moving average; log: on a log scale, leaving out series that are all zero."""
    window = max(1, min(200, len(history[series[0][0]]) // 20))
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in series:
        if log and not any(history[key]):
            continue
        y = _smooth(history[key], window)
        ax.plot(np.arange(len(y)) + window // 2, np.abs(y) if log else y, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (moving average over {window} steps)")
    ax.set_title(f"{title}: losses per step")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def gan_loss_curves(history: dict, path: Path, title: str) -> None:
    _loss_curves(history, (("d_real", "D loss on real"), ("d_fake", "D loss on fake"), ("g", "G loss")), path,
                 title)


def distill_loss_curves(history: dict, path: Path, title: str) -> None:
    """A distilled generator's losses per step, on a log scale (they fall by orders of magnitude)."""
    _loss_curves(history, (("pixel", "pixel L1 to the teacher"), ("feature", "classifier features (relative)"),
                           ("adversarial", "adversarial")), path, title, log=True)


def tsne_scatter(latents: torch.Tensor, labels: torch.Tensor, path: Path, title: str, seed: int = 0,
                 class_names: tuple[str, ...] | None = None) -> None:
    """class_names: the colour bar's labels (default: the digits 0-9)."""
    from sklearn.manifold import TSNE

    points = latents.detach().float().cpu().numpy()
    perplexity = float(min(30, max(2, len(points) - 1) / 3))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    scatter = ax.scatter(embedded[:, 0], embedded[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    bar = fig.colorbar(scatter, ax=ax, ticks=range(10), label="digit" if class_names is None else "class")
    if class_names is not None:
        bar.ax.set_yticklabels(class_names)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)


def cost_vs_fid(rows: list[dict], path: Path, title: str, budget_us: float | None = None) -> None:
    """Each generator's time per image against its FID; rows: dicts with name, us_per_image, fid."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in rows:
        teacher = row.get("teacher", False)
        ax.scatter(row["us_per_image"], row["fid"], marker="*" if teacher else "o", s=90 if teacher else 30,
                   color="black" if teacher else "tab:blue")
        ax.annotate(row.get("label", row["name"]), (row["us_per_image"], row["fid"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    if budget_us is not None:
        ax.axvline(budget_us, color="tab:red", linestyle="--", linewidth=1, label=f"{budget_us:g} us budget")
        ax.legend(fontsize=8)
    ax.set_xlabel("microseconds per image (one thread, batch 16)")
    ax.set_ylabel("FID (bundled classifier's features)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)


def utility_curve(curve: dict, path: Path, title: str) -> None:
    """Real test accuracy against the number of training items (log scale): one line per source (a model,
    or "real", dashed) and learner, as the utility's curve records them (rows[source][learner][n])."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = dict(zip(curve.get("learners", []), "os^D"))
    for source, per_learner in curve.get("rows", {}).items():
        for learner, points in per_learner.items():
            if learner not in markers:
                continue
            sizes = sorted(int(n) for n in points)
            ax.plot(sizes, [100 * points[str(n)] for n in sizes], marker=markers[learner],
                    linestyle="--" if source == "real" else "-", label=f"{source}, {learner}")
    ax.set_xscale("log")
    ax.set_xlabel("training items")
    ax.set_ylabel("accuracy on the real test set (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)
