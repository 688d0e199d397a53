"""`python -m trainer report`: reports/REPORT.md, the course report's experiments redone, with
figures copied beside it and the metrics table from `evaluate`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.checkpoint import family_of

PRESET_ORDER = ["vae-seed", "gan-seed", "vae", "gan"]
FIGURES = {
    "vae": ["loss_curves.png", "reconstructions_epoch*.png", "tsne.png", "interpolation.png"],
    "gan": ["loss_curves.png", "samples_epoch*.png", "digits.png", "interpolation.png"],
}
# Quality targets for the served defaults; the floor is the real-vs-test FID.
GAN_FID_FACTOR, GAN_MIN_IS, GAN_HIST_RANGE = 4.0, 9.3, (0.07, 0.13)
VAE_FID_FACTOR, VAE_MAX_NLL = 0.5, 90.0
GAN_MIN_CAS = 0.98  # a classifier trained on 60,000 gan digits, tested on real ones


def _figures(runs: Path, out: Path, preset: str, family: str) -> list[str]:
    """The preset's figures under out/figures/<preset>/, as paths relative to `out`.

    When runs/<preset> holds figures (a new training run), they replace the ones there, so none of
    an older run's linger; otherwise the figures already there (committed with the report) are kept
    as they are: a checkout without run folders rewrites the report with the same figures."""
    source = runs / preset
    target_dir = out / "figures" / preset
    fresh = [path for pattern in FIGURES[family] for path in sorted(source.glob(pattern))]
    if fresh:
        if target_dir.is_dir():
            shutil.rmtree(target_dir)
        target_dir.mkdir(parents=True)
        for path in fresh:
            shutil.copy(path, target_dir / path.name)
    return [f"figures/{preset}/{path.name}"
            for pattern in FIGURES[family] for path in sorted(target_dir.glob(pattern))]


def _fmt(value, digits=2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _metrics_table(metrics: dict) -> str:
    lines = ["| model | FID ↓ | KID ↓ | IS ↑ | class KL ↓ | digits covered | class shares (%) 0–9 |",
             "|---|---|---|---|---|---|---|"]
    rows = {**{f"*{k}*": v for k, v in metrics.get("references", {}).items()}, **metrics.get("models", {})}
    for name, m in rows.items():
        shares = " ".join(f"{100 * v:.0f}" for v in m["class_histogram"])
        lines.append(f"| {name} | {_fmt(m['fid'])} | {_fmt(m['kid'], 4)} | {_fmt(m['inception_score'])} | "
                     f"{_fmt(m['class_kl_to_uniform'], 3)} | {m['digits_covered']} | {shares} |")
    return "\n".join(lines)


def _vae_table(metrics: dict) -> str:
    lines = ["| model | trained on | test −ELBO grey | test −ELBO binarised | test NLL binarised (IS) | "
             "recon. MSE / pixel |", "|---|---|---|---|---|---|"]
    for name, m in metrics.get("models", {}).items():
        if "test_nll_binarised" not in m:
            continue
        lines.append(f"| {name} | {m['trained_on']} | {_fmt(m['test_neg_elbo_grey'])} | "
                     f"{_fmt(m['test_neg_elbo_binarised'])} | {_fmt(m['test_nll_binarised'])} "
                     f"(k={m['nll_k']}, {m['nll_images']} images) | {_fmt(m['reconstruction_mse_per_pixel'], 4)} |")
    return "\n".join(lines)


def _utility_table(metrics: dict) -> str:
    utility = metrics.get("utility")
    if not utility:
        return "_No utility scores yet: run `python -m trainer evaluate --utility-only`._"
    real = utility["real"]["test_accuracy"]
    lines = [utility["protocol"], "",
             f"n = {utility['n']:,} training images, seed {utility['seed']}, on {utility['device']}.", "",
             "| trained on | labels | real test accuracy | vs real data |", "|---|---|---|---|",
             f"| *{utility['n']:,} real MNIST digits* | the dataset's | {100 * real:.2f} % | — |"]
    for name, row in utility["models"].items():
        source = "the class asked for" if row["label_source"] == "generator" else "the bundled classifier"
        lines.append(f"| {utility['n']:,} digits of {name} (`/dataset?model={name}`) | {source} | "
                     f"{100 * row['test_accuracy']:.2f} % | {100 * (row['test_accuracy'] - real):+.2f} points |")
    return "\n".join(lines)


def _targets(metrics: dict) -> list[tuple[str, str, bool | None]]:
    models = metrics.get("models", {})
    floor = next((v["fid"] for k, v in metrics.get("references", {}).items() if k.startswith("real")), None)
    rows = []
    gan, vae, vae_seed = models.get("gan"), models.get("vae"), models.get("vae-seed")
    if gan and floor:
        rows.append((f"gan FID ≤ {GAN_FID_FACTOR:g} × floor ({GAN_FID_FACTOR * floor:.1f})", _fmt(gan["fid"]),
                     gan["fid"] <= GAN_FID_FACTOR * floor))
    if gan:
        rows.append((f"gan IS ≥ {GAN_MIN_IS}", _fmt(gan["inception_score"]), gan["inception_score"] >= GAN_MIN_IS))
        lo, hi = GAN_HIST_RANGE
        shares = gan["class_histogram"]
        rows.append((f"gan every digit {100 * lo:.0f}–{100 * hi:.0f} %",
                     f"{100 * min(shares):.1f}–{100 * max(shares):.1f} %", lo <= min(shares) and max(shares) <= hi))
    if vae and vae_seed:
        rows.append((f"vae FID ≤ ½ vae-seed's ({VAE_FID_FACTOR * vae_seed['fid']:.1f})", _fmt(vae["fid"]),
                     vae["fid"] <= VAE_FID_FACTOR * vae_seed["fid"]))
    if vae and "test_nll_binarised" in vae:
        rows.append((f"vae binarised test NLL ≤ {VAE_MAX_NLL:g} nats", _fmt(vae["test_nll_binarised"]),
                     vae["test_nll_binarised"] <= VAE_MAX_NLL))
    gan_utility = metrics.get("utility", {}).get("models", {}).get("gan")
    if gan_utility:
        rows.append((f"gan utility (CAS) ≥ {100 * GAN_MIN_CAS:.1f} %", f"{100 * gan_utility['test_accuracy']:.2f} %",
                     gan_utility["test_accuracy"] >= GAN_MIN_CAS))
    if "digit_check" in metrics:
        check = metrics["digit_check"]
        rows.append(("gan digit= gives the digit ≥ 95 %", f"{100 * check['accuracy']:.1f} %",
                     check["accuracy"] >= 0.95))
    return rows


def _family(card: dict) -> str:
    """vae | gan | classifier: the card's "family", else derived from its checkpoint "kind"."""
    if "family" in card:
        return card["family"]
    return family_of(card["kind"]) if "kind" in card else "?"


def _architectures(cards: dict[str, dict]) -> str:
    lines = ["| preset | family | what | epochs | batch | Adam lr (β) | trained in |", "|---|---|---|---|---|---|---|"]
    for name in PRESET_ORDER + ["classifier"]:
        card = cards.get(name)
        if not card:
            continue
        r = card.get("recipe", {})
        t = card.get("training", {})
        betas = r.get("betas", ("?", "?"))
        lines.append(f"| {name} | {_family(card)} | {card.get('description', '')} | "
                     f"{card.get('epochs', '?')} | {r.get('batch_size', '?')} | {r.get('lr', '?')} "
                     f"({betas[0]}, {betas[1]}) | {t.get('seconds', '?')} s on {t.get('device', '?')} |")
    return "\n".join(lines)


def _epochs_table(path: Path) -> str:
    if not path.exists():
        return "_No snapshot table: run `python -m trainer evaluate --snapshots runs/gan/snapshots --n 5000 " \
               "--out reports/gan_epochs.json`._"
    data = json.loads(path.read_text())
    agreement = any("class_agreement" in row for row in data["rows"])  # class-conditional generators
    lines = [f"n = {data['n']} samples per snapshot.", "",
             "| epoch | FID | IS | class KL | digits covered |" + (" class agreement |" if agreement else ""),
             "|---|---|---|---|---|" + ("---|" if agreement else "")]
    for row in data["rows"]:
        extra = f" {100 * row['class_agreement']:.1f} % |" if "class_agreement" in row else (" — |" if agreement else "")
        lines.append(f"| {row['epoch']} | {row['fid']:.2f} | {row['inception_score']:.2f} | "
                     f"{row['class_kl_to_uniform']:.4f} | {row['digits_covered']} |{extra}")
    return "\n".join(lines)


def write_report(metrics_path: Path, runs: Path, weights_dir: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    metrics = json.loads(Path(metrics_path).read_text()) if Path(metrics_path).exists() else {}
    cards = {p.stem: json.loads(p.read_text()) for p in Path(weights_dir).glob("*.json")}
    parts = [
        "# digitgen: the course report's experiments, redone and completed",
        "",
        "Generated by `python -m trainer report` from the bundled model cards, the training runs in `runs/` "
        "and `reports/metrics.json` (written by `python -m trainer evaluate`). Numbers are re-created by "
        "`make train && make evaluate && make report`.",
        "",
        "## Recipes",
        "",
        _architectures(cards),
        "",
        "## Sample quality and coverage",
        "",
        metrics.get("protocol", "_No metrics yet: run `python -m trainer evaluate`._"),
        "",
        _metrics_table(metrics) if metrics else "",
        "",
        "## VAE likelihoods",
        "",
        metrics.get("nll_method", ""),
        "",
        _vae_table(metrics) if metrics else "",
        "",
        "## Utility: a classifier trained on synthetic digits only",
        "",
        _utility_table(metrics),
        "",
        "## Targets for the served defaults",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t} | {v} | {'yes' if ok else 'NO'} |" for t, v, ok in _targets(metrics)],
        "",
        "## GAN quality by epoch",
        "",
        _epochs_table(out / "gan_epochs.json"),
        "",
    ]
    for preset in PRESET_ORDER:
        card = cards.get(preset)
        if not card:
            continue
        figures = _figures(runs, out, preset, _family(card))
        parts += [f"## {preset}", "", card.get("description", ""), ""]
        parts += [f"![{Path(f).stem}]({f})" for f in figures] or ["_No figures: train this preset to make them._"]
        parts.append("")
    discussion = Path(__file__).with_name("discussion.md")
    if discussion.exists():
        parts += ["## Discussion", "", discussion.read_text().strip(), ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(parts))
    return path
