"""Checkpoint I/O: one safetensors file per module, the config in its header, no pickle.

Terms, used with one meaning each across models/ and trainer/ (and in checkpoints and cards).
A model's *family* is what a training preset makes and the service offers: `vae`, `gan` or
`classifier`. A checkpoint's *kind* is the module class its weights build: `vae` (VAE),
`generator` (Generator: the part of a GAN that is checkpointed and served; its discriminator is
only used in training) or `classifier` (DigitClassifier); `family_of(kind)` maps a kind to its
family, so the kind `generator` is the family `gan`. A generator's or discriminator's *arch*
(`mlp` | `dcgan`, in GeneratorConfig / DiscriminatorConfig) is its network architecture within
the gan family. Weights headers and model cards store the kind under "kind"; cards also store the
family under "family".

Header metadata: one key, "digitgen", holding JSON {"format": "1", "kind": "vae" | "generator" |
"classifier", "config": {the module's config dataclass}}. One key, because safetensors writes its
metadata map in an arbitrary order per process: with several keys the same weights gave files with
different bytes, and so different SHA-256s, from run to run.
A model card `<name>.json` beside the weights carries the recipe and metrics; when present,
`load` checks that the card names the same kind/config and the weights' SHA-256.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.classifier import ClassifierConfig, DigitClassifier
from models.gan import Generator, GeneratorConfig
from models.vae import VAE, VAEConfig

FORMAT_VERSION = "1"
METADATA_KEY = "digitgen"

# kind -> (config class, module class); the only modules a checkpoint may build.
KINDS: dict[str, tuple[type, type[nn.Module]]] = {
    "vae": (VAEConfig, VAE),
    "generator": (GeneratorConfig, Generator),
    "classifier": (ClassifierConfig, DigitClassifier),
}
# kind -> family (see the module docstring)
FAMILIES: dict[str, str] = {"vae": "vae", "generator": "gan", "classifier": "classifier"}


class CheckpointError(RuntimeError):
    """A weights file or model card that cannot be used; the message names the file."""


@dataclass
class LoadedCheckpoint:
    name: str
    kind: str
    module: nn.Module
    config: Any
    card: dict | None
    sha256: str
    path: Path

    @property
    def family(self) -> str:
        return family_of(self.kind)


def family_of(kind: str) -> str:
    """The family (vae | gan | classifier) of a checkpoint kind (vae | generator | classifier)."""
    if kind not in FAMILIES:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def kind_of(module: nn.Module) -> str:
    for kind, (_, cls) in KINDS.items():
        if type(module) is cls:
            return kind
    raise TypeError(f"cannot checkpoint a {type(module).__name__}")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(config_cls: type, data: dict) -> Any:
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}")
    # JSON has no tuples; the dataclasses use tuples for widths.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return config_cls(**values)


def save(module: nn.Module, config: Any, card: dict | None, path: str | Path) -> str:
    """Write `module`'s weights to `path` (safetensors) and `card` to `path.with_suffix('.json')`.

    Returns the weights' SHA-256, which is also written into the card as `weights_sha256`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = kind_of(module)
    header = {"format": FORMAT_VERSION, "kind": kind, "config": config_to_dict(config)}
    metadata = {METADATA_KEY: json.dumps(header, sort_keys=True)}
    # contiguous CPU copies: safetensors stores raw buffers and refuses shared storage.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    path.chmod(0o644)  # safetensors creates 0600 files; weights are read by an unprivileged service user
    digest = sha256_file(path)
    if card is not None:
        card = {**card, "kind": kind, "config": config_to_dict(config), "weights_sha256": digest}
        path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return digest


def read_card(path: str | Path) -> dict | None:
    card_path = Path(path).with_suffix(".json")
    if not card_path.exists():
        return None
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{card_path.name}: unreadable model card ({exc})") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path.name}: model card is not a JSON object")
    return card


def load(path: str | Path, device: str | torch.device = "cpu", *, require_card: bool = False) -> LoadedCheckpoint:
    """Build the module described by the checkpoint at `path`, load its weights onto `device`
    and return it in eval() mode, with its card. Raises CheckpointError naming the file."""
    path = Path(path)
    name = path.stem
    if not path.is_file():
        raise CheckpointError(f"{path.name}: weights file not found")
    card = read_card(path)
    if require_card and card is None:
        raise CheckpointError(f"{path.name}: model card {path.with_suffix('.json').name} is missing")
    digest = sha256_file(path)
    if card is not None and card.get("weights_sha256") not in (None, digest):
        raise CheckpointError(
            f"{path.name}: SHA-256 {digest[:12]}… does not match its model card "
            f"({str(card.get('weights_sha256'))[:12]}…); the weights or the card were changed"
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({exc})") from None
    try:
        header = json.loads(metadata[METADATA_KEY])
        kind = header["kind"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path.name}: not a digitgen checkpoint (no '{METADATA_KEY}' header)") from None
    if kind not in KINDS:
        raise CheckpointError(f"{path.name}: unknown model kind {kind!r} in the header")
    config_cls, module_cls = KINDS[kind]
    try:
        config_dict = header["config"]
        config = config_from_dict(config_cls, config_dict)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: bad config in header ({exc})") from None
    if card is not None and (card.get("kind", kind) != kind or card.get("config", config_dict) != config_dict):
        raise CheckpointError(f"{path.name}: model card describes a different model than the weights header")
    module = module_cls(config)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path.name}: weights do not fit the {kind} config ({first})") from None
    module.to(device).eval()
    module.requires_grad_(False)
    return LoadedCheckpoint(name=name, kind=kind, module=module, config=config, card=card, sha256=digest, path=path)
