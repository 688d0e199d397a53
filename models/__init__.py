"""Pure PyTorch model code for digitgen: configs, modules, checkpoint I/O and sampling.

Nothing here parses arguments or reads datasets; `trainer/` and `service/` do that and both
build modules from the config stored in a checkpoint. The terms `kind`, `family` and `arch` are
defined in models/checkpoint.py.
"""
from models.checkpoint import CheckpointError, LoadedCheckpoint, load, save
from models.classifier import ClassifierConfig, DigitClassifier
from models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from models.paths import BUNDLED_WEIGHTS
from models.shapes import IMAGE_SHAPE, IMAGE_SIZE, PIXELS
from models.vae import VAE, VAEConfig, vae_loss

__all__ = [
    "CheckpointError", "LoadedCheckpoint", "load", "save",
    "ClassifierConfig", "DigitClassifier",
    "Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig",
    "VAE", "VAEConfig", "vae_loss",
    "BUNDLED_WEIGHTS", "IMAGE_SHAPE", "IMAGE_SIZE", "PIXELS",
]
