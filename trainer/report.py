"""`python -m trainer report`: reports/REPORT.md, the course report's experiments redone, with
figures copied beside it and the metrics table from `evaluate`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.checkpoint import family_of
from trainer import targets
from trainer.presets import BUNDLED, PRESETS
from trainer.targets import floor_fid, judge_utility, share_range, summary

PRESET_ORDER = [name for name in BUNDLED["mnist"] if PRESETS[name].family != "classifier"]
FASHION_ORDER = [name for name in BUNDLED["fashion"] if PRESETS[name].family != "classifier"]
# each MNIST model next to the same recipe on Fashion-MNIST: fashion-gan is gan-wide's recipe and
# fashion-vae vae-normal's (the distilled gan and the VampPrior vae have no fashion counterpart)
SIDE_BY_SIDE = [("vae-seed", "fashion-vae-seed"), ("gan-seed", "fashion-gan-seed"), ("vae-normal", "fashion-vae"),
                ("gan-wide", "fashion-gan")]
FIGURES = {
    "vae": ["loss_curves.png", "reconstructions_epoch*.png", "samples.png", "digits.png", "tsne.png",
            "interpolation.png"],
    "gan": ["loss_curves.png", "samples_epoch*.png", "digits.png", "interpolation.png"],
}
# Published test NLLs on dynamically binarised MNIST (nats, importance-sampled), for the ladder
VAE_ANCHORS = [
    ("VAE, 1 stochastic layer (Burda et al. 2016, IWAE paper)", 86.76),
    ("VAE, 1 layer, standard prior (Tomczak & Welling 2018)", 88.56),
    ("VAE, 1 layer, VampPrior (Tomczak & Welling 2018)", 85.57),
    ("HVAE, 2 layers, VampPrior (Tomczak & Welling 2018)", 83.19),
    ("convolutional HVAE, VampPrior (Tomczak & Welling 2018)", 81.09),
]
# the ladder's bundled rungs, in order: the course recipe, the vae the VampPrior one replaced, the served vae
BUNDLED_LADDER = ("vae-seed", "vae-normal", "vae")


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
    return _figure_paths(out, preset, family)


def _figure_paths(out: Path, preset: str, family: str) -> list[str]:
    """The figures already under out/figures/<preset>/, as paths relative to `out`."""
    return [f"figures/{preset}/{path.name}"
            for pattern in FIGURES[family] for path in sorted((out / "figures" / preset).glob(pattern))]


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


def _shares(metrics: dict, name: str, conditional: bool) -> str:
    if conditional:
        return "10 % each (exact)"
    shares = metrics.get("models", {}).get(name, {}).get("class_histogram")
    return share_range(shares) if shares else "—"


def _utility_rows(metrics: dict, key: str) -> list[str]:
    """The per-learner table of one utility section: mean ± spread over the seeds, and the gap to real."""
    section = metrics[key]
    learners = list(section["learners"])
    gaps = section.get("gaps", {})
    spelled = "&verified=true" if key == "utility_verified" else ""
    lines = ["| trained on | labels | class shares | " + " | ".join(learners) + " |", "|---|---|---|" + "---|" * len(learners)]
    real = section["real"]

    def cell(values: dict) -> str:
        seeds = summary(values)
        return f"{100 * seeds['mean']:.2f} ± {100 * seeds['spread']:.2f}"

    lines.append(f"| *{section['n']:,} real {section.get('dataset', 'MNIST')} images* | the dataset's | "
                 "as in the data | " + " | ".join(cell(real[l]["accuracy"]) if l in real else "—" for l in learners) + " |")
    for name, row in section["models"].items():
        conditional = row["label_source"] == "generator"
        source = "the class asked for" if conditional else "the bundled classifier"
        cells = [f"{cell(row['learners'][l]['accuracy'])} (gap {gaps[name][l]['gap']:+.2f})"
                 if l in gaps.get(name, {}) else "—" for l in learners]
        lines.append(f"| `/dataset?model={name}{spelled}` | {source} | {_shares(metrics, name, conditional)} | "
                     + " | ".join(cells) + " |")
    return lines


def _utility_table(metrics: dict, out: Path | None = None) -> str:
    """The utility section: the protocol, the per-learner table (plain and verified sets), the curve."""
    utility = metrics.get("utility")
    if not utility:
        return "_No utility scores yet: run `python -m trainer evaluate --utility-only`._"
    if "learners" not in utility:  # measured before the per-learner protocol
        real = utility["real"]["test_accuracy"]
        lines = [utility["protocol"], "", f"n = {utility['n']:,}, seed {utility['seed']}, one learner (the bundled "
                 "classifier's recipe).", "", "| trained on | real test accuracy | vs real data |", "|---|---|---|",
                 f"| *{utility['n']:,} real images* | {100 * real:.2f} % | — |"]
        lines += [f"| `/dataset?model={name}` | {100 * row['test_accuracy']:.2f} % | "
                  f"{100 * (row['test_accuracy'] - real):+.2f} points |" for name, row in utility["models"].items()]
        return "\n".join(lines)
    seeds = ", ".join(str(s) for s in utility["seeds"])
    lines = [utility["protocol"], "",
             f"n = {utility['n']:,} training items, seeds {seeds}, on {utility['device']}; each cell is the real "
             "test accuracy in %, mean ± half the range over the seeds, and the gap to the real-data row in points "
             "(positive: the synthetic set teaches less). The learners:", ""]
    lines += [f"- **{name}**: {text}" for name, text in utility["learners"].items()] + [""]
    lines += _utility_rows(metrics, "utility")
    if metrics.get("utility_verified", {}).get("learners"):
        lines += ["", "Verified sets (off-class items drawn again until the bundled classifier agrees):", ""]
        lines += _utility_rows(metrics, "utility_verified")
    curve = utility.get("curve", {})
    if curve.get("rows") and out is not None:
        from trainer.figures import utility_curve
        path = out / "figures" / "utility_curve.png"
        utility_curve(curve, path, f"{utility.get('dataset', 'MNIST')}: accuracy against training items "
                                   f"(seed {curve['seed']})")
        lines += ["", _curve_table(curve), "", f"![utility curve]({path.relative_to(out)})"]
    return "\n".join(lines)


def _curve_table(curve: dict) -> str:
    sizes = curve["sizes"]
    lines = ["| trained on | learner | " + " | ".join(f"{n:,}" for n in sizes) + " |", "|---|---|" + "---|" * len(sizes)]
    for source, per_learner in curve["rows"].items():
        for learner in curve["learners"]:
            points = per_learner.get(learner, {})
            lines.append(f"| {source} | {learner} | " + " | ".join(
                f"{100 * points[str(n)]:.2f}" if str(n) in points else "—" for n in sizes) + " |")
    return "\n".join(lines)


def _distillation(metrics: dict, out: Path) -> list[str]:
    """The cost-vs-quality sweep of the distilled gan (reports/gan_distill.json) and the served gan's targets."""
    sweep = _read(out / "gan_distill.json")
    if not sweep:
        return ["_No sweep yet: run `python -m trainer distill-sweep`._", ""]
    rows = [r for r in sweep["rows"] if "us_per_image" in r]  # a stopped sweep's rows are not yet timed
    teacher = next((r for r in rows if r.get("teacher")), None)
    lines = [sweep["protocol"], "",
             "| generator | channels | epochs | µs per image | × gan-wide | multiply-adds | FID ↓ | IS ↑ | class shares "
             "| class agreement | pixel-PCA FID ↓ | mean abs. difference to gan-wide (of 255) | trained |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["us_per_image"]):
        ratio = f"{r['us_per_image'] / teacher['us_per_image']:.2f}" if teacher else ""
        trained = f"{r['train_seconds'] / 60:.0f} min" if "train_seconds" in r else ""
        name = f"**{r['name']}**" if r.get("served") else r["name"]
        lines.append(f"| {name} | {r['hidden_dim']}-{r['hidden_dim'] // 2} | {r.get('epochs', '')} | "
                     f"{r['us_per_image']:.1f} | {ratio} | {r['multiply_adds_per_image'] / 1e6:.2f} M | {r['fid']:.2f} | "
                     f"{r['inception_score']:.2f} | {share_range(r['class_histogram'])} | "
                     f"{100 * r['class_agreement']:.1f} % | {r['pixel_pca_fid']:.2f} | "
                     f"{r.get('mean_abs_difference_to_teacher', 0):.2f} | {trained} |")
    lines += ["", "![cost against FID](gan_distill.png)", ""]
    rows_met = targets.distillation(rows)
    if rows_met:
        lines += [*targets.table(rows_met), ""]
    return lines


def _vae_ladder(metrics: dict, ladder: dict, cards: dict) -> list[str]:
    """From the course recipe to the served vae: the bundled VAEs (reports/metrics.json) and the
    candidates of reports/vae_ladder.json, next to the published figures, and the served vae's targets."""
    bundled, candidates = metrics.get("models", {}), ladder.get("models", {})
    rows = []
    for name in [*BUNDLED_LADDER[:-1], *_ladder_candidates(ladder), BUNDLED_LADDER[-1]]:
        if name in BUNDLED_LADDER:  # the bundled ones come from metrics.json
            if name in bundled:
                rows.append((name, bundled[name], cards.get(name, {})))
        else:
            rows.append((name, candidates[name], candidates[name].get("card") or {}))
    rows = [(name, m, card) for name, m, card in rows if m.get("test_nll_binarised") is not None]
    if not rows:
        return ["_No VAE measured yet: run `python -m trainer evaluate`._", ""]
    lines = ["| model | recipe | test NLL (nats) ↓ | images, k | test −ELBO binarised | FID ↓ | recon. MSE / pixel ↓ "
             "| trained |", "|---|---|---|---|---|---|---|---|"]
    for name, m, card in rows:
        training = card.get("training") or {}
        trained = (f"{card.get('epochs', '?')} epochs, {training['seconds'] / 60:.0f} min on {training.get('device', '?')}"
                   if "seconds" in training else "")
        shown = f"**{name}** (served)" if name == "vae" else name
        lines.append(f"| {shown} | {card.get('description', '')} | {_fmt(m['test_nll_binarised'])} | "
                     f"{m['nll_images']:,}, {m['nll_k']:,} | {_fmt(m['test_neg_elbo_binarised'])} | {_fmt(m.get('fid'))} | "
                     f"{_fmt(m['reconstruction_mse_per_pixel'], 4)} | {trained} |")
    for label, nll in VAE_ANCHORS:
        lines.append(f"| *{label}* | published | {nll:.2f} | 10,000 | | | | |")
    lines.append("")
    ladder_rows = [row for row in targets.served(metrics) if row[0].startswith("vae ")] + targets.reconstructions(metrics)
    if ladder_rows:
        lines += [*targets.table(ladder_rows), ""]
    return lines


def _ladder_candidates(ladder: dict) -> list[str]:
    """The rungs of reports/vae_ladder.json that are not bundled (those come from metrics.json)."""
    return [name for name in ladder.get("models", {}) if name not in BUNDLED_LADDER]


def _side_by_side(mnist: dict, fashion: dict) -> str:
    """Each recipe on MNIST and on Fashion-MNIST, every figure in its own dataset's classifier's terms."""
    def cells(metrics: dict, name: str) -> list[str]:
        m = metrics.get("models", {}).get(name)
        floor = floor_fid(metrics)
        cas = judge_utility(metrics.get("utility", {}), name)
        if not m:
            return ["—"] * 6
        return [f"{m['fid']:.1f} ({m['fid'] / floor:.1f}×)" if floor else _fmt(m["fid"], 1),
                _fmt(m["inception_score"]),
                share_range(m["class_histogram"]),
                f"{100 * m['class_agreement']:.1f} %" if "class_agreement" in m else "—",
                _fmt(m.get("test_nll_binarised")),
                f"{100 * cas:.2f} %" if cas is not None else "—"]

    header = ["FID (× floor) ↓", "IS ↑", "class shares", "class agreement", "NLL (nats) ↓", "utility (CAS)"]
    lines = ["| recipe | " + " | ".join(f"{h}: MNIST / Fashion" for h in header) + " |",
             "|---|" + "---|" * len(header)]
    floors = [floor_fid(mnist), floor_fid(fashion)]
    lines.append("| *real train vs test (floor)* | " + (f"{_fmt(floors[0], 1)} / {_fmt(floors[1], 1)}" if all(floors)
                                                         else "—") + " |" + " |" * (len(header) - 1))
    for recipe, fashion_name in SIDE_BY_SIDE:
        a, b = cells(mnist, recipe), cells(fashion, fashion_name)
        lines.append(f"| {recipe} | " + " | ".join(f"{x} / {y}" for x, y in zip(a, b)) + " |")
    return "\n".join(lines)


def _harder_data(mnist: dict, fashion: dict, cards: dict, runs: Path, out: Path) -> list[str]:
    if not fashion:
        return ["_No Fashion-MNIST metrics yet: train the fashion-* presets, then run "
                "`python -m trainer evaluate --dataset fashion`._", ""]
    accuracy = fashion.get("classifier_test_accuracy")
    judge = (f"`fashion-classifier` (the digit classifier's CNN and recipe, trained 10 epochs: "
             f"{100 * accuracy:.2f} % on the Fashion-MNIST test set)" if accuracy else "`fashion-classifier`")
    parts = [
        "Every recipe above, unchanged, trained on Fashion-MNIST (Xiao et al. 2017: 28×28 grey images of ten kinds "
        f"of clothing) and measured the same way, in the features of {judge} instead of the digit classifier's. "
        "FID values of two datasets are on different scales, so each is also given as a multiple of its own "
        "dataset's floor (the real training images against the test images).",
        "",
        fashion.get("protocol", ""),
        "",
        _side_by_side(mnist, fashion),
        "",
        "Fashion-MNIST in detail:",
        "",
        _metrics_table(fashion),
        "",
        _vae_table(fashion),
        "",
        _utility_table(fashion, out),
        "",
        *targets.table(targets.fashion(fashion)),
        "",
    ]
    if "digit_check" in fashion:
        check = fashion["digit_check"]
        parts += [f"`label=` on {check['model']}, checked by a judge that shares nothing with the fashion classifier "
                  f"({check['judge']}; {100 * check['judge_accuracy_on_test']:.1f} % on real test images): "
                  f"{100 * check['accuracy']:.1f} % of {check['samples']} samples are the class asked for.", ""]
    parts += ["fashion-gan's quality by epoch (its snapshots every 5 epochs):", "",
              _epochs_table(out / "fashion-gan_epochs.json", "fashion-gan"), ""]
    parts += _preset_sections(FASHION_ORDER, cards, runs, out, "###")
    parts += _discussion("discussion-fashion.md", "### What changes on harder data, and why")
    return parts


def _preset_sections(presets: list[str], cards: dict, runs: Path, out: Path, heading: str) -> list[str]:
    """One section per trained preset: its description and figures."""
    parts = []
    for preset in presets:
        card = cards.get(preset)
        if not card:
            continue
        figures = _figures(runs, out, preset, _family(card))
        parts += [f"{heading} {preset}", "", card.get("description", ""), ""]
        parts += [f"![{Path(f).stem}]({f})" for f in figures] or ["_No figures: train this preset to make them._"]
        parts.append("")
    return parts


def _discussion(filename: str, heading: str) -> list[str]:
    """A hand-written discussion kept beside this module, under `heading`."""
    path = Path(__file__).with_name(filename)
    return [heading, "", path.read_text().strip(), ""] if path.exists() else []


def _family(card: dict) -> str:
    """vae | gan | classifier: the card's "family", else derived from its checkpoint "kind"."""
    if "family" in card:
        return card["family"]
    return family_of(card["kind"]) if "kind" in card else "?"


def _architectures(cards: dict[str, dict]) -> str:
    lines = ["| preset | family | what | epochs | batch | Adam lr (β) | trained in |", "|---|---|---|---|---|---|---|"]
    for name in [name for names in BUNDLED.values() for name in names]:
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


def _epochs_table(path: Path, preset: str = "gan-wide") -> str:
    if not path.exists():
        dataset = " --dataset fashion" if preset.startswith("fashion-") else ""
        return f"_No snapshot table: run `python -m trainer evaluate{dataset} --snapshots runs/{preset}/snapshots " \
               f"--n 5000 --out reports/{path.name}`._"
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


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def write_report(metrics_path: Path, runs: Path, weights_dir: Path, out: Path) -> Path:
    """REPORT.md from the MNIST metrics at metrics_path and, beside it, metrics-fashion.json (Fashion-MNIST),
    where it exists."""
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = Path(metrics_path)
    metrics = _read(metrics_path)
    fashion = _read(metrics_path.with_name("metrics-fashion.json"))
    cards = {p.stem: json.loads(p.read_text()) for p in Path(weights_dir).glob("*.json")}
    parts = [
        "# digitgen: the course report's experiments, redone and completed",
        "",
        "Generated by `python -m trainer report` from the bundled model cards, the training runs in `runs/` "
        "and `reports/metrics.json` and `reports/metrics-fashion.json` (written by `python -m trainer evaluate` "
        "and `python -m trainer evaluate --dataset fashion`). Numbers are re-created by "
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
        "## Utility: classifiers trained on synthetic digits only",
        "",
        _utility_table(metrics, out),
        "",
        *_discussion("discussion-utility.md", "### What the utility figures say"),
        "## Targets for the served defaults",
        "",
        *targets.table(targets.served(metrics)),
        "",
        "## GAN quality by epoch",
        "",
        _epochs_table(out / "gan-wide_epochs.json", "gan-wide"),
        "",
    ]
    parts += _preset_sections(PRESET_ORDER, cards, runs, out, "##")
    parts += _discussion("discussion.md", "## Discussion")
    parts += ["## A cheaper gan: gan-wide distilled", "", *_distillation(metrics, out)]
    parts += _discussion("discussion-distill.md", "### What the sweep says")
    parts += ["## Harder data: Fashion-MNIST", "", *_harder_data(metrics, fashion, cards, runs, out)]
    ladder = _read(metrics_path.with_name("vae_ladder.json"))
    parts += ["## The VAE ladder: from the course recipe towards the published front", "",
              ladder.get("nll_method", metrics.get("nll_method", "")), "", *_vae_ladder(metrics, ladder, cards)]
    # each candidate's samples, t-SNE and curves, and the served vae's next to them (its preset section
    # above has already copied them)
    served = BUNDLED_LADDER[-1]
    for name in [*_ladder_candidates(ladder), served]:
        found = _figure_paths(out, name, "vae") if name == served else _figures(runs, out, name, "vae")
        last = max((f for f in found if "reconstructions_epoch" in f), default=None)  # the final epoch's only
        shown = [f for f in found if "reconstructions_epoch" not in f or f == last]
        if shown:
            parts += [f"### {name}" + (" (served)" if name == served else ""), "",
                      *[f"![{name} {Path(f).stem}]({f})" for f in shown], ""]
    parts += _discussion("discussion-vae.md", "### What the ladder says")
    path = out / "REPORT.md"
    path.write_text("\n".join(parts))
    return path
