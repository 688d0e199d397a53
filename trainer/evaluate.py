"""`python -m trainer evaluate`: every bundled generative model of a dataset (MNIST, or Fashion-MNIST)
against that dataset's test set, in the feature space of its bundled classifier."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from models import synthetic as sequence
from models.checkpoint import LoadedCheckpoint, load
from models.datasets import DatasetInfo, dataset_named, dataset_of_card
from models.devices import resolve_device
from models.paths import BUNDLED_WEIGHTS
from models.sampling import prior_draws, sample_digit, to_uint8
from models.shapes import IMAGE_SHAPE, PIXELS
from models.vae import VAE
from trainer.common import to_unit
from trainer.data import Splits, load_dataset
from trainer.metrics import bernoulli_log_likelihood, image_metrics, importance_sampled_log_likelihood

PROTOCOL = (
    "n samples per model against the 10,000 {title} test images; features = the bundled classifier's "
    "({classifier}) 128-d penultimate layer (FID, KID), its softmax for IS (10 splits) and the class histogram; "
    "samples are quantised to 8 bits exactly as the service serves them; VAE samples are decoder means."
)


def protocol(info: DatasetInfo) -> str:
    return PROTOCOL.format(title=info.title, classifier=info.classifier)


class WrongDataset(ValueError):
    """A model asked for by name was trained on another dataset than the one being evaluated."""


def models_of(weights_dir: Path, info: DatasetInfo, names: list[str] | None = None) -> list[str]:
    """Every checkpoint in weights_dir whose card says it was trained on this dataset (a card without
    a dataset is MNIST), but the dataset's classifier; with `names`, those, checked to be of it (a
    model is only measured against its own dataset's test set and classifier)."""
    def dataset_of(path: Path) -> DatasetInfo:
        card_path = path.with_suffix(".json")
        return dataset_of_card(json.loads(card_path.read_text()) if card_path.exists() else None)

    if names:
        for name in names:
            other = dataset_of(Path(weights_dir) / f"{name}.safetensors")
            if other != info:
                raise WrongDataset(f"{name} was trained on {other.title}, not {info.title}: "
                                 f"evaluate it with --dataset {other.key}")
        return list(names)
    return [path.stem for path in sorted(Path(weights_dir).glob("*.safetensors"), key=lambda p: p.stem)
            if path.stem != info.classifier and dataset_of(path) == info]
NLL_METHOD = (
    "importance sampling with the encoder as proposal (Burda et al. 2016): log p(x) ~= logsumexp_i "
    "[log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k, z_i ~ q(z|x), on test images binarised once with "
    "a fixed seed (Bernoulli draws of the grey levels); reported as the mean -log p(x) in nats."
)


@torch.no_grad()
def generate_with_latents(generator: torch.nn.Module, n: int, seed: int, device: torch.device,
                          truncation: float = 1.0, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples (n, 1, 28, 28) in [0, 1] on `device`, quantised to 8 bits exactly as the service
    serves them (models.sampling.to_uint8), and their latents (scaled by `truncation`; 1 = plain N(0, I))."""
    g = torch.Generator().manual_seed(seed)
    images, latents = [], []
    for start in range(0, n, batch):
        z = (prior_draws(generator, torch.randn(min(batch, n - start), generator.latent_dim, generator=g))
             * truncation).to(device)
        images.append(to_uint8(generator.generate(z)).to(device).float().div_(255))
        latents.append(z)
    return torch.cat(images), torch.cat(latents)


@torch.no_grad()
def class_agreement(generator, images: torch.Tensor, latents: torch.Tensor, classifier, seed: int = 0) -> float:
    """A class-conditional generator: the share of samples the classifier calls the class they were drawn
    for (no rejection; digit= adds the classifier's check on top of this). A generator that reads the
    class from the latent (the GANs) is judged on these samples; one whose latents do not say their class
    (an exemplar VAE) on as many items of its /dataset sequence, drawn for equal shares of the classes."""
    if hasattr(generator, "latent_classes"):
        wanted = generator.latent_classes(latents)
    else:
        device = images.device
        images, wanted = sequence.make(generator, len(images), seed, device=device)
        images = images.to(device).float().div_(255)
    said = torch.cat([classifier(part).argmax(1) for part in images.split(1000)])
    return float((said.cpu() == wanted.cpu().long()).float().mean())


BLUR_SIGMA = 1.0  # pixels: about the softness of a VAE's decoder means on these images


def blurred(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(n, 1, 28, 28) in [0, 1], Gaussian-blurred (5x5 kernel, zero padding) and quantised to 8 bits."""
    offsets = torch.arange(-2, 3, dtype=torch.float32)
    line = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(line, line)
    kernel = (kernel / kernel.sum()).reshape(1, 1, 5, 5)
    return to_uint8(torch.nn.functional.conv2d(images, kernel, padding=2)).float().div_(255)


def reference_sets(data: Splits, n: int, seed: int, info: DatasetInfo | None = None) -> dict[str, torch.Tensor]:
    """The rows that give the metrics a scale: real images (the floor), real images blurred (what
    softness alone costs), noise and a single class (ceilings)."""
    g = torch.Generator().manual_seed(seed)
    ones = data.train_images[data.train_labels == 1]
    ones = ones.repeat((n + len(ones) - 1) // len(ones), 1, 1)[:n]
    single = "single digit '1'" if info is None or info.key == "mnist" else f"single class '{info.classes[1]}'"
    real = to_unit(data.train_images[:n])
    return {
        "real train vs test (floor)": real,
        f"real train blurred, sigma {BLUR_SIGMA:g} px": blurred(real),
        "uniform noise (ceiling)": to_uint8(torch.rand(n, *IMAGE_SHAPE, generator=g)).float().div_(255),
        f"{single} (ceiling)": to_unit(ones),
    }


@torch.no_grad()
def vae_metrics(vae: VAE, data: Splits, trained_on_binarised: bool, nll_images: int, k: int, seed: int,
                device: torch.device) -> dict:
    test = to_unit(data.test_images).to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    binarised = torch.bernoulli(test, generator=g)
    grey_elbo, bin_elbo, sq_err, abs_err = 0.0, 0.0, 0.0, 0.0
    for start in range(0, len(test), 1000):
        for x, name in ((test[start:start + 1000], "grey"), (binarised[start:start + 1000], "bin")):
            loss = vae.neg_elbo(x).sum().item()
            if name == "grey":
                grey_elbo += loss
                recon = vae.decode(vae.encode(x)[0])
                sq_err += ((recon - x) ** 2).sum().item()
                abs_err += (recon - x).abs().sum().item()
            else:
                bin_elbo += loss
    count = len(test)
    metrics = {
        "test_neg_elbo_grey": grey_elbo / count,
        "test_neg_elbo_binarised": bin_elbo / count,
        "trained_on": "binarised pixels" if trained_on_binarised else "grey levels",
        "reconstruction_mse_per_pixel": sq_err / (count * PIXELS),
        "reconstruction_mae_per_pixel": abs_err / (count * PIXELS),
    }
    if nll_images <= 0:
        return metrics
    started = time.perf_counter()
    nll_x = binarised[:nll_images].reshape(-1, PIXELS)
    log_px = []
    for start in range(0, len(nll_x), 100):
        log_px.append(importance_sampled_log_likelihood(
            nll_x[start:start + 100], vae.encode, bernoulli_log_likelihood(vae.decode_logits), k, generator=g,
            log_prior=vae.log_prior))
    nll = -torch.cat(log_px).mean().item()
    return {**metrics, "test_nll_binarised": nll, "nll_k": k, "nll_images": len(nll_x),
            "nll_seconds": round(time.perf_counter() - started, 1)}


def digit_check(weights_dir: Path, data: Splits, model: str, per_digit: int, seed: int,
                device: torch.device, *, min_confidence: float | None = None,
                max_rounds: int = 50, classifier_name: str = "classifier") -> dict:
    """Independent check of `digit=` sampling: the service's rejection sampler
    (models.sampling.sample_digit, the bundled CNN as judge, the service's default confidence) makes
    `per_digit` samples of each digit (min_confidence: default the model's dataset's, as the service);
    a 5-nearest-neighbour classifier on 50 principal components
    of the raw pixels, fitted on the training split and sharing nothing with the CNN, says which
    digit each one is. Its own accuracy on test digits is reported beside it: it bounds what
    agreement can show."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    loaded = load(Path(weights_dir) / f"{model}.safetensors", device)
    generator = loaded.module
    if min_confidence is None:
        min_confidence = dataset_of_card(loaded.card).min_confidence
    classifier = load(Path(weights_dir) / f"{classifier_name}.safetensors", device).module
    images, wanted = [], []
    for digit in range(10):
        _, x = sample_digit(generator, classifier, digit, per_digit, seed + digit, max_rounds=max_rounds,
                            min_confidence=min_confidence, device=device, name=model)
        images.append(x.reshape(len(x), -1))
        wanted += [digit] * len(x)
    train = data.train_images.reshape(len(data.train_images), -1).float().numpy() / 255
    pca = PCA(n_components=min(50, train.shape[0], train.shape[1]), random_state=seed).fit(train)
    knn = KNeighborsClassifier(n_neighbors=5, weights="distance").fit(pca.transform(train), data.train_labels.numpy())
    predicted = knn.predict(pca.transform(torch.cat(images).float().numpy() / 255))
    test_n = min(2000, len(data.test_images))
    knn_test = knn.predict(pca.transform(data.test_images[:test_n].reshape(test_n, -1).float().numpy() / 255))
    wanted_t = torch.tensor(wanted)
    return {
        "model": model,
        "samples": len(wanted),
        "accuracy": float((torch.from_numpy(predicted) == wanted_t).float().mean()),
        "judge": "5-NN (distance-weighted) on 50 PCA components of raw pixels, fitted on the training split",
        "min_confidence": min_confidence,
        "judge_accuracy_on_test": float((torch.from_numpy(knn_test) == data.test_labels[:test_n]).float().mean()),
    }


def update_card(ckpt: LoadedCheckpoint, metrics: dict) -> None:
    path = ckpt.path.with_suffix(".json")
    card = json.loads(path.read_text())
    card["metrics"] = {**card.get("metrics", {}), **{k: v for k, v in metrics.items() if k != "card"}}
    path.write_text(json.dumps(card, indent=2) + "\n")


def print_table(rows: dict[str, dict]) -> None:
    print(f"{'model':32s} {'FID':>8s} {'KID':>8s} {'IS':>6s} {'KL':>6s} {'digits':>6s}  histogram")
    for name, m in rows.items():
        hist = " ".join(f"{100 * v:.0f}" for v in m["class_histogram"])
        print(f"{name:32s} {m['fid']:8.2f} {m['kid']:8.4f} {m['inception_score']:6.2f} "
              f"{m['class_kl_to_uniform']:6.3f} {m['digits_covered']:6d}  {hist}")


def run_evaluate(*, weights_dir: Path, out: Path, n: int = 10_000, models: list[str] | None = None,
                 nll_k: int = 5000, nll_images: int | None = None, seed: int = 0, device: str = "auto",
                 data_dir: Path | None = None, update_cards: bool = True, digit_check_per_digit: int = 100,
                 data: Splits | None = None, dataset: str = "mnist") -> dict:
    """Evaluate `models` (default: every generative checkpoint of `dataset` in `weights_dir`) on n
    samples each, against that dataset's test set in its classifier's features; write the results to
    `out` (JSON) and, with `update_cards`, into the model cards.
    nll_images: test images for the VAE NLL (default: 10,000 on a GPU, 1,000 on the CPU);
    digit_check_per_digit: samples per class for the check of the dataset's gan's digit=/label=
    sampling (0: skip); data: the dataset already in memory (default: read from data_dir)."""
    device = resolve_device(device)
    info = dataset_named(dataset)
    data = data if data is not None else load_dataset(dataset, data_dir)
    weights_dir = Path(weights_dir)
    names = models_of(weights_dir, info, models)
    # the judge: the weights folder's own classifier, else the bundled one (a run folder holds one model)
    judge = weights_dir / f"{info.classifier}.safetensors"
    classifier = load(judge if judge.is_file() else BUNDLED_WEIGHTS / judge.name, device)
    test = to_unit(data.test_images).to(device)
    results: dict = {"protocol": protocol(info), "dataset": info.title, "n": n, "device": str(device),
                     "references": {}, "models": {},
                     "classifier_test_accuracy": classifier.card.get("metrics", {}).get("test_accuracy")}
    for name, images in reference_sets(data, n, seed, info).items():
        results["references"][name] = image_metrics(images.to(device), test, classifier.module)
    for name in names:
        ckpt = load(weights_dir / f"{name}.safetensors", device)
        if ckpt.kind not in ("vae", "generator"):
            continue
        started = time.perf_counter()
        images, latents = generate_with_latents(ckpt.module, n, seed, device)
        metrics = image_metrics(images, test, classifier.module)
        if getattr(ckpt.module, "num_classes", 0):
            metrics["class_agreement"] = class_agreement(ckpt.module, images, latents, classifier.module, seed)
        if ckpt.kind == "vae":
            binarised = bool((ckpt.card or {}).get("recipe", {}).get("binarize", False))
            count = nll_images if nll_images is not None else (10_000 if device.type == "cuda" else 1000)
            if ckpt.module.config.prior == "exemplar" and nll_images is None:
                count = 0  # 60,000 prior components per importance sample: asked for by --nll-images only
            metrics.update(vae_metrics(ckpt.module, data, binarised, min(count, len(data.test_images)),
                                       nll_k, seed, device))
        metrics["evaluated_seconds"] = round(time.perf_counter() - started, 1)
        metrics["feature_space"] = f"bundled classifier ({info.classifier}), 128-d penultimate layer"
        card = ckpt.card or {}  # what was measured, for a report made where the weights are not
        metrics["card"] = {"description": card.get("description", ""), "epochs": card.get("epochs"),
                           "training": card.get("training", {}), "weights_sha256": ckpt.sha256}
        results["models"][name] = metrics
        if update_cards and ckpt.card is not None:
            update_card(ckpt, metrics)
        print(f"evaluated {name} in {metrics['evaluated_seconds']} s", flush=True)
    checked = info.model_name("gan")
    if checked in results["models"] and digit_check_per_digit > 0:
        results["digit_check"] = digit_check(weights_dir, data, checked, digit_check_per_digit, seed, device,
                                             classifier_name=info.classifier)
        print(f"digit=/label= check on {checked}: {100 * results['digit_check']['accuracy']:.1f} % agree with an "
              f"independent PCA + 5-NN judge", flush=True)
        if update_cards:
            update_card(load(weights_dir / f"{checked}.safetensors", device),
                        {"digit_sampling_check": results["digit_check"]})
    out = Path(out)
    if out.exists():  # trainer/utility.py's sections: not measured here
        kept = json.loads(out.read_text())
        results.update({key: kept[key] for key in ("utility", "utility_verified") if key in kept})
    if models and out.exists():  # a partial run updates the models it measured, keeps the others
        previous = json.loads(out.read_text())
        if previous.get("n") == n:
            results["models"] = {**previous.get("models", {}), **results["models"]}
            if "digit_check" in previous and "digit_check" not in results:
                results["digit_check"] = previous["digit_check"]
    if any("test_nll_binarised" in m for m in results["models"].values()):
        results["nll_method"] = NLL_METHOD
    print_table({**results["references"], **results["models"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


def run_epochs_table(snapshots: Path, *, weights_dir: Path, out: Path, n: int = 10_000, seed: int = 0,
                     device: str = "auto", data_dir: Path | None = None, data: Splits | None = None,
                     dataset: str = "mnist") -> list[dict]:
    """FID / IS / class KL of each GAN snapshot (runs/gan-wide/snapshots/epochNNN.safetensors), written to
    `out`; rows already in `out` for the same snapshot bytes and n are kept, not measured again."""
    device = resolve_device(device)
    info = dataset_named(dataset)
    data = data if data is not None else load_dataset(dataset, data_dir)
    classifier = load(Path(weights_dir) / f"{info.classifier}.safetensors", device)
    test = to_unit(data.test_images).to(device)
    out = Path(out)
    # rows already measured for the same snapshot bytes and n are kept (snapshots arrive during training)
    done = {}
    if out.exists():
        previous = json.loads(out.read_text())
        if previous.get("n") == n:
            done = {row["sha256"]: row for row in previous.get("rows", []) if "sha256" in row}
    rows = []
    for path in sorted(snapshots.glob("epoch*.safetensors")):
        ckpt = load(path, device)
        epoch = int(path.stem.removeprefix("epoch"))
        if ckpt.sha256 in done:
            rows.append({**done[ckpt.sha256], "epoch": epoch})
            continue
        images, latents = generate_with_latents(ckpt.module, n, seed, device)
        m = image_metrics(images, test, classifier.module)
        if getattr(ckpt.module, "num_classes", 0):
            m["class_agreement"] = class_agreement(ckpt.module, images, latents, classifier.module)
        rows.append({"epoch": epoch, "sha256": ckpt.sha256, **m})
        print(f"epoch {rows[-1]['epoch']:3d}: FID {m['fid']:.2f}  IS {m['inception_score']:.2f}  "
              f"class KL {m['class_kl_to_uniform']:.4f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"protocol": protocol(info), "n": n, "snapshots": str(snapshots), "rows": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return rows
