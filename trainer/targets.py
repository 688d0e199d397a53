"""The targets the served models are held to: one table (TARGETS), read by the report and the tests.

Each check takes the metrics `trainer evaluate` wrote (reports/metrics.json, metrics-fashion.json) and
gives rows (what is promised, what was measured, met or not); a row whose figure is not measured is left
out rather than shown as failed."""
from __future__ import annotations

Row = tuple[str, str, bool]

TARGETS = {
    # the served gan (gan-wide distilled): quality against the floor (the real training images' FID to
    # the test images), coverage, and cost against gan-wide (one thread, batch 16)
    "gan_fid_floor_factor": 4.0,
    "gan_max_fid": 11.0,
    "gan_min_is": 9.5,
    "gan_shares": (0.085, 0.115),
    "gan_min_digit_agreement": 0.98,  # digit= gives the digit, by a judge independent of the classifier
    "gan_max_us": 40.0,
    "gan_max_cost_ratio": 0.25,
    "gan_min_utility": 0.98,  # the bundled classifier's recipe trained on 60,000 /dataset digits
    # the served vae (the VAE ladder's top rung): NLL on all 10,000 binarised test images with k = 5,000,
    # sample FID, and FID at most half the course recipe's
    "vae_max_nll": 83.0,
    "vae_nll_images": 10_000,
    "vae_max_fid": 50.0,
    "vae_fid_of_seed_factor": 0.5,
    # /dataset's default model: its utility gap to the 60,000 real digits, every learner, mean over seeds
    "dataset_model": "vae-exemplar",
    "dataset_max_gap": 0.5,
    # Fashion-MNIST's served generator
    "fashion_fid_floor_factor": 10.0,
    "fashion_shares": (0.085, 0.115),
    "fashion_min_agreement": 0.85,
}
UTILITY_JUDGE = "classifier"  # trainer/utility.py's learner with the dataset's own classifier recipe


def summary(per_seed: dict[str, float]) -> dict[str, float]:
    """{seed: accuracy} -> mean and spread (half the range between the seeds)."""
    values = list(per_seed.values())
    return {"mean": sum(values) / len(values), "spread": (max(values) - min(values)) / 2}


def share_range(shares: list[float], digits: int = 1) -> str:
    return f"{100 * min(shares):.{digits}f}–{100 * max(shares):.{digits}f} %"


def _shares_row(who: str, shares: list[float], bounds: tuple[float, float], what: str = "digit") -> Row:
    lo, hi = bounds
    return (f"{who} every {what} {100 * lo:.1f}–{100 * hi:.1f} %", share_range(shares, 2),
            lo <= min(shares) and max(shares) <= hi)


def floor_fid(metrics: dict) -> float | None:
    """The real-vs-real FID (the reference row marked "(floor)")."""
    return next((v["fid"] for k, v in metrics.get("references", {}).items() if k.endswith("(floor)")), None)


def judge_utility(section: dict, name: str) -> float | None:
    """A model's utility with the dataset's own classifier recipe, the mean over seeds (per-learner layout),
    or the single figure of metrics written before it."""
    row = section.get("models", {}).get(name)
    if not row:
        return None
    if "learners" not in row:
        return row.get("test_accuracy")
    per_seed = row["learners"].get(UTILITY_JUDGE, {}).get("accuracy", {})
    return summary(per_seed)["mean"] if per_seed else None


def served(metrics: dict) -> list[Row]:
    """The served gan's and vae's quality, utility and coverage, and /dataset's default model's utility."""
    t, models, floor = TARGETS, metrics.get("models", {}), floor_fid(metrics)
    gan, vae, vae_seed = models.get("gan"), models.get("vae"), models.get("vae-seed")
    rows: list[Row] = []
    if gan:
        if floor:
            limit = t["gan_fid_floor_factor"] * floor
            rows.append((f"gan FID ≤ {t['gan_fid_floor_factor']:g} × floor ({limit:.1f})", f"{gan['fid']:.2f}",
                         gan["fid"] <= limit))
        rows += [(f"gan FID ≤ {t['gan_max_fid']:g} (n = {metrics.get('n', '?')})", f"{gan['fid']:.2f}",
                  gan["fid"] <= t["gan_max_fid"]),
                 (f"gan IS ≥ {t['gan_min_is']}", f"{gan['inception_score']:.2f}",
                  gan["inception_score"] >= t["gan_min_is"]),
                 _shares_row("gan", gan["class_histogram"], t["gan_shares"])]
    for key, spelled in (("utility", ""), ("utility_verified", "&verified=true")):
        utility = judge_utility(metrics.get(key, {}), "gan")
        if utility is not None:
            rows.append((f"gan utility (CAS, `/dataset?model=gan{spelled}`) ≥ {100 * t['gan_min_utility']:.1f} %",
                         f"{100 * utility:.2f} %", utility >= t["gan_min_utility"]))
    check = metrics.get("digit_check", {})
    if check.get("model") == "gan":
        rows.append((f"gan digit= agreement ≥ {100 * t['gan_min_digit_agreement']:.0f} % (independent judge)",
                     f"{100 * check['accuracy']:.1f} %", check["accuracy"] >= t["gan_min_digit_agreement"]))
    if vae and vae_seed:
        limit = t["vae_fid_of_seed_factor"] * vae_seed["fid"]
        rows.append((f"vae FID ≤ ½ vae-seed's ({limit:.1f})", f"{vae['fid']:.2f}", vae["fid"] <= limit))
    if vae and vae.get("fid") is not None:
        rows.append((f"vae sample FID ≤ {t['vae_max_fid']:g}", f"{vae['fid']:.2f}", vae["fid"] <= t["vae_max_fid"]))
    if vae and vae.get("test_nll_binarised") is not None:
        on_all = vae["nll_images"] >= t["vae_nll_images"] and vae["nll_k"] >= 5000
        rows.append((f"vae test NLL ≤ {t['vae_max_nll']:g} nats on all {t['vae_nll_images']:,} test images, "
                     f"k = 5,000", f"{vae['test_nll_binarised']:.2f} ({vae['nll_images']:,} images)",
                     on_all and vae["test_nll_binarised"] <= t["vae_max_nll"]))
    gaps = metrics.get("utility", {}).get("gaps", {}).get(t["dataset_model"])
    if gaps:
        worst = max(row["gap"] for row in gaps.values())
        rows.append((f"{t['dataset_model']} (the default /dataset model): gap to real ≤ {t['dataset_max_gap']:g} "
                     f"points for every learner", f"{worst:+.2f} (worst of {len(gaps)})", worst <= t["dataset_max_gap"]))
    return rows


def distillation(sweep_rows: list[dict]) -> list[Row]:
    """The served gan's cost against the gan-wide it was distilled from (reports/gan_distill.json)."""
    t = TARGETS
    chosen = next((r for r in sweep_rows if r.get("served")), None)
    teacher = next((r for r in sweep_rows if r.get("teacher")), None)
    if not (chosen and teacher):
        return []
    ratio = chosen["us_per_image"] / teacher["us_per_image"]
    return [(f"gan ≤ {t['gan_max_us']:g} µs per image (one thread, batch 16)", f"{chosen['us_per_image']:.1f} µs",
             chosen["us_per_image"] <= t["gan_max_us"]),
            (f"gan ≤ {t['gan_max_cost_ratio']:g} × gan-wide's time, same run", f"{ratio:.2f} ×",
             ratio <= t["gan_max_cost_ratio"])]


def reconstructions(metrics: dict) -> list[Row]:
    """The served vae's reconstructions against vae-normal's, the vae it replaced."""
    models = metrics.get("models", {})
    vae, replaced = models.get("vae"), models.get("vae-normal")
    if not (vae and replaced and "reconstruction_mse_per_pixel" in vae):
        return []
    limit = replaced["reconstruction_mse_per_pixel"]
    return [(f"vae: reconstructions as good as vae-normal's (MSE ≤ {limit:.4f})",
             f"{vae['reconstruction_mse_per_pixel']:.4f}", vae["reconstruction_mse_per_pixel"] <= limit)]


def fashion(metrics: dict) -> list[Row]:
    t, gan, floor = TARGETS, metrics.get("models", {}).get("fashion-gan"), floor_fid(metrics)
    if not gan:
        return []
    rows: list[Row] = []
    if floor:
        limit = t["fashion_fid_floor_factor"] * floor
        rows.append((f"fashion-gan FID ≤ {t['fashion_fid_floor_factor']:g} × the fashion floor ({limit:.1f})",
                     f"{gan['fid']:.2f}", gan["fid"] <= limit))
    rows.append(_shares_row("fashion-gan", gan["class_histogram"], t["fashion_shares"], "class"))
    if "class_agreement" in gan:
        rows.append((f"fashion-gan label= agreement (fashion classifier) ≥ {100 * t['fashion_min_agreement']:.0f} %",
                     f"{100 * gan['class_agreement']:.1f} %", gan["class_agreement"] >= t["fashion_min_agreement"]))
    return rows


def table(rows: list[Row]) -> list[str]:
    """Rows as a Markdown table: target | measured | met."""
    return ["| target | measured | met |", "|---|---|---|", *[f"| {t} | {v} | {'yes' if ok else 'NO'} |" for t, v, ok in rows]]
