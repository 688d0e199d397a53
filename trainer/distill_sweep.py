"""`python -m trainer distill-sweep`: what a cheaper `gan` costs and what it gives up.

For each generator width, the `gan` recipe (gan-wide, the DCGAN trained as a GAN, distilled latent for
latent) at that width and number of epochs is trained in runs/distill/<row>/ (kept: a row already
trained with the same recipe from the same teacher is not trained again, and a stopped one
resumes), then measured next to the teacher:

- cost: microseconds per image on one thread at batch 16 (the serving batch of a busy single-PNG
  load) and multiply-adds per image, every generator timed side by side in interleaved rounds once all
  are trained (trainer.metrics.generator_costs), each as it is served (the students with BatchNorm
  folded into their layers, the teacher as it is);
- quality, on n samples from `trainer evaluate`'s latents: FID / IS / class shares in the bundled
  classifier's features, the share of samples whose class is the one their latent asks for, and an
  FID in a space the feature loss never saw (50 principal components of raw pixels);
- fidelity to the teacher: the mean absolute pixel difference on the same latents (0-255 scale).

Rows go to --out (JSON, merged with the rows already there) and a cost-vs-FID plot next to it (.png).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch

from models.checkpoint import load
from models.datasets import dataset_named
from models.devices import resolve_device
from models.gan import fold_batchnorm
from models.paths import BUNDLED_WEIGHTS
from trainer import figures
from trainer.common import to_unit
from trainer.data import Splits, load_dataset
from trainer.evaluate import class_agreement, generate_with_latents
from trainer.metrics import PixelPCAFeatures, feature_fid, generator_costs, image_metrics
from trainer.presets import get_preset, with_defaults
from trainer.targets import TARGETS
from trainer.resume import STATE_FILE
from trainer.run import train_preset


def student_preset(width: int, epochs: int, feature: float, adversarial: float, base: str = "gan"):
    preset = get_preset(base, epochs=epochs)
    tag = f"w{width}-f{feature:g}-a{adversarial:g}-e{epochs}"
    return dataclasses.replace(preset, name=f"distill-{tag}", distill_feature=feature,
                               distill_adversarial=adversarial,
                               generator=dataclasses.replace(preset.generator, hidden_dim=width))


def _same_run(card: dict, preset, teacher_sha: str, max_steps: int | None) -> bool:
    """Whether a finished run's card is this preset's training: the same recipe (as JSON, where tuples
    are lists; the class shares are the teacher's, set when training starts) from the same teacher
    weights, whatever the teacher and the recipe were called then."""
    def what(recipe: dict) -> dict:
        return {k: v for k, v in recipe.items() if k not in ("name", "description", "teacher")}
    def as_json(recipe: dict) -> dict:  # fields added since the card was written: their defaults
        return json.loads(json.dumps(with_defaults(recipe)))
    recipe = as_json({**preset.to_dict(), "generator": card["recipe"]["generator"]})
    return (what(as_json(card["recipe"])) == what(recipe) and card.get("distilled_from", {}).get("weights_sha256") == teacher_sha
            and card["training"].get("steps_per_epoch_cap") == max_steps)


def trained(preset, data: Splits, device: torch.device, runs: Path, teacher_dir: Path, max_steps: int | None,
            teacher_sha: str):
    """The checkpoint of `preset` in runs/<name>: trained now unless a finished one of this run is there."""
    run_dir = runs / preset.name
    path = run_dir / f"{preset.name}.safetensors"
    if path.is_file():
        card = json.loads(path.with_suffix(".json").read_text())
        if _same_run(card, preset, teacher_sha, max_steps):
            return load(path, device), card
        (run_dir / STATE_FILE).unlink(missing_ok=True)  # another run's state: start this one afresh
    resume = (run_dir / STATE_FILE).is_file()
    card = train_preset(preset, data, device, run_dir, max_steps=max_steps, progress=False, resume=resume,
                        teacher_dir=teacher_dir)
    return load(path, device), card


def measure(name: str, generator, teacher_images: torch.Tensor | None, data: Splits, classifier, pca, test,
            n: int, seed: int, device: torch.device) -> dict:
    images, latents = generate_with_latents(generator, n, seed, device)
    metrics = image_metrics(images, test, classifier)
    row = {"name": name, "n": n,
           "fid": round(metrics["fid"], 3), "inception_score": round(metrics["inception_score"], 3),
           "class_histogram": metrics["class_histogram"],
           "class_agreement": round(class_agreement(generator, images, latents, classifier), 4),
           "pixel_pca_fid": round(feature_fid(images, test, pca), 3)}
    if teacher_images is not None:
        row["mean_abs_difference_to_teacher"] = round(float((images - teacher_images).abs().mean()) * 255, 3)
    shares = metrics["class_histogram"]
    print(f"{name:34s} FID "
          f"{row['fid']:6.2f}  IS {row['inception_score']:.2f}  classes {100 * min(shares):.1f}-"
          f"{100 * max(shares):.1f} %  agree {100 * row['class_agreement']:.1f} %  pixel-PCA FID "
          f"{row['pixel_pca_fid']:.2f}", flush=True)
    return row


def run_sweep(*, widths: list[int], epochs: int, feature: float, adversarial: float, n: int = 5000,
              seed: int = 0, out: Path, runs: Path = Path("runs/distill"), weights_dir: Path = BUNDLED_WEIGHTS,
              device: str = "auto", data_dir: Path | None = None, data: Splits | None = None,
              max_steps: int | None = None, cost_rounds: int = 40) -> list[dict]:
    device = resolve_device(device)
    data = data if data is not None else load_dataset("mnist", data_dir)
    info = dataset_named("mnist")
    classifier = load(Path(weights_dir) / f"{info.classifier}.safetensors", device).module
    test = to_unit(data.test_images).to(device)
    pca = PixelPCAFeatures(to_unit(data.train_images[:20_000])).to(device)
    base = get_preset("gan")
    loaded = load(Path(weights_dir) / f"{base.teacher}.safetensors", device)
    teacher = loaded.module
    teacher_images, _ = generate_with_latents(teacher, n, seed, device)
    served_forms = {f"{base.teacher} (teacher)": teacher}
    rows = [{**measure(f"{base.teacher} (teacher)", teacher, None, data, classifier, pca, test, n, seed, device),
             "hidden_dim": teacher.config.hidden_dim, "teacher": True}]
    out = Path(out)
    for width in widths:
        preset = student_preset(width, epochs, feature, adversarial)
        student, card = trained(preset, data, device, runs, Path(weights_dir), max_steps, loaded.sha256)
        # measured as served: BatchNorm folded (runs trained before folding was part of training still are)
        served_forms[preset.name] = fold_batchnorm(student.module)
        row = measure(preset.name, served_forms[preset.name], teacher_images, data, classifier, pca, test, n, seed,
                      device)
        rows.append({**row, "hidden_dim": width, "epochs": epochs, "distill_feature": feature,
                     "distill_adversarial": adversarial, "train_seconds": card["training"]["seconds"],
                     "train_device": card["training"]["device"]})
        write(rows, out)  # after every row: a long sweep that stops keeps what it measured
    served = Path(weights_dir) / f"{base.name}.safetensors"
    card = json.loads(served.with_suffix(".json").read_text()) if served.is_file() else {}
    if card.get("distilled_from", {}).get("weights_sha256") == loaded.sha256:  # the bundled student, as served
        generator = load(served, device).module
        served_forms[f"{base.name} (served)"] = generator
        row = measure(f"{base.name} (served)", generator, teacher_images, data, classifier, pca, test, n, seed, device)
        rows.append({**row, "hidden_dim": generator.config.hidden_dim, "epochs": card["epochs"], "served": True,
                     "train_seconds": card["training"]["seconds"], "train_device": card["training"]["device"]})
        write(rows, out)
    costs = generator_costs({name: copy.deepcopy(g).cpu() for name, g in served_forms.items()}, rounds=cost_rounds)
    rows = [{**row, **costs[row["name"]]} for row in rows]
    for row in rows:
        print(f"{row['name']:34s} {row['us_per_image']:7.1f} us per image  {row['multiply_adds_per_image'] / 1e6:5.2f} M "
              "multiply-adds", flush=True)
    write(rows, out)
    # rows of a sweep stopped before its side-by-side timing have no cost: not on the plot
    all_rows = [r for r in json.loads(out.read_text())["rows"] if "us_per_image" in r]
    figures.cost_vs_fid([{**r, "label": r["name"].removeprefix("distill-")} for r in all_rows],
                        out.with_suffix(".png"), title="gan-wide distilled: cost per image against FID", budget_us=TARGETS["gan_max_us"])
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {"rows": []}
    kept = {row["name"]: row for row in previous.get("rows", [])}
    kept.update({row["name"]: row for row in rows})
    out.write_text(json.dumps({"protocol": __doc__.split("\n\n", 1)[1].strip(), "rows": list(kept.values())},
                              indent=2) + "\n")
