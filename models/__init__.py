"""Pure PyTorch model code for digitgen: configs, modules and checkpoint I/O.

Nothing here parses arguments, reads datasets or picks a device; `trainer/` and `service/`
do that and both build modules from the config stored in a checkpoint.
"""
from models.checkpoint import CheckpointError, LoadedCheckpoint, load, save
from models.classifier import ClassifierConfig, DigitClassifier
from models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from models.vae import VAE, VAEConfig, vae_loss

__all__ = [
    "CheckpointError", "LoadedCheckpoint", "load", "save",
    "ClassifierConfig", "DigitClassifier",
    "Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig",
    "VAE", "VAEConfig", "vae_loss",
]

IMAGE_SHAPE = (1, 28, 28)
