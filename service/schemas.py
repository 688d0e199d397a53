"""Typed request and response bodies (they document /openapi.json)."""
from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from models.synthetic import ALL_DIGITS, DEFAULT_MODEL as DEFAULT_DATASET_MODEL

Format = Literal["png", "json", "npy"]
MAX_NROW = 1024  # images per grid row, wherever a grid is asked for
MAX_SEED = 2**63 - 1  # seeds are torch.Generator seeds: non-negative 64-bit integers
LATENT_LIMIT = 1000.0  # the largest |value| of a latent vector given to /decode or /interpolate
# The constraints every model name and seed takes, in a body or a query (FastAPI reads them beside Query())
ModelName = Annotated[str, MinLen(1), MaxLen(64)]
Seed = Annotated[int, Ge(0), Le(MAX_SEED)]
# Descriptions shared by the query models and the routes' own parameters. The limits that depend on
# the configuration (DIGITGEN_MAX_*) are filled into /openapi.json from the settings (service/openapi.py).
SEED_HELP = "same model, seed and parameters: same bytes, on any machine; omitted: a random seed (in X-Seed)"
SCALE_HELP = "nearest-neighbour enlargement of every image (limit DIGITGEN_MAX_SCALE)"
GENERATIVE_HELP = "a generative model from /models"
STEPS_HELP = "images from start to end, both included (limit DIGITGEN_MAX_STEPS)"
METHOD_HELP = "slerp keeps a Gaussian latent's typical norm"
STRIP_HELP = "png strip or json"
Method = Literal["slerp", "lerp"]
StripFormat = Literal["png", "json"]


class SampleQuery(BaseModel):
    """GET /sample's parameters: one model for the FastAPI route and its lean path (LeanSample),
    so both read a query string the same way."""
    model: ModelName = Field("gan", description=GENERATIVE_HELP, examples=["gan"])
    n: int = Field(1, ge=1, description="number of images (limit DIGITGEN_MAX_SAMPLES); n > 1 gives a grid PNG",
                   examples=[16])
    seed: Seed | None = Field(None, description=SEED_HELP, examples=[42])
    digit: int | None = Field(None, ge=0, le=9, description="only samples of this class (0-9; MNIST: the digit, "
                              "other datasets: the index of a class name in /models): drawn from the class's "
                              "part of a class-conditional model's latent space, and each kept only if the "
                              "model's classifier is sure of it", examples=[7])
    label: int | None = Field(None, ge=0, le=9, description="the same as digit, by its name for any dataset "
                              "(e.g. Fashion-MNIST's 7 is Sneaker); give one of the two", examples=[7])
    format: Format = Field("png", description="png: one image or a grid; json: base64 PNGs with latents and the "
                           "classifier's digit; npy: uint8 array (n, 28, 28) for bulk use")
    nrow: int = Field(8, ge=1, le=MAX_NROW, description="images per grid row (png)")
    scale: int = Field(1, ge=1, description=SCALE_HELP)

    @model_validator(mode="after")
    def _label_is_digit(self):
        """label= is digit= by another name: one field afterwards, so both spell one cached answer."""
        if self.label is not None:
            if self.digit is not None and self.digit != self.label:
                raise ValueError(f"digit={self.digit} and label={self.label} disagree: they are one parameter "
                                 "(label is digit's dataset-neutral name), give one of them")
            self.digit, self.label = self.label, None
        return self


MAX_OFFSET = 10**12  # /dataset items are indexed from 0 up to here


class DatasetQuery(BaseModel):
    """GET /dataset's parameters."""
    model: ModelName = Field(DEFAULT_DATASET_MODEL, description=GENERATIVE_HELP + " (default: the one "
                             "whose sets teach a classifier most like real data; gan where it is not loaded)",
                             examples=[DEFAULT_DATASET_MODEL])
    n: int = Field(1000, ge=1, description="number of labelled images (limit DIGITGEN_MAX_DATASET)",
                   examples=[60000])
    seed: Seed | None = Field(None, description="the dataset's seed: same model, seed and "
                             "digits, same sequence; omitted: a random seed (in X-Seed)", examples=[0])
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="index of the first item: offset and n select a "
                        "slice of the sequence, so pages fetched one by one equal one big request", examples=[0])
    digits: str | None = Field(None, pattern=r"^[0-9](,[0-9])*$", max_length=19,
                               description="comma-separated classes (0-9) to include, in equal shares (default: "
                               "all ten); class-conditional models only", examples=["3,8"])
    labels: str | None = Field(None, pattern=r"^[0-9](,[0-9])*$", max_length=19,
                               description="the same as digits, by its name for any dataset (class indices as "
                               "in /models); give one of the two", examples=["3,8"])
    verified: bool = Field(False, description="class-conditional models: an item the model's classifier does not "
                           "see as the class asked for is drawn again until it does (no off-class items; costs a "
                           "classifier pass per item); items it agrees with are the plain sequence's. Models "
                           "without classes are labelled by the classifier anyway")
    format: Literal["npz", "tar"] = Field("npz", description="npz: numpy.load gives `images` uint8 (n, 28, 28) "
                                          "and `labels` uint8 (n,); tar: WebDataset samples <index>.png + "
                                          "<index>.cls")

    @model_validator(mode="after")
    def _labels_are_digits(self):
        """labels= is digits= by another name (see SampleQuery.label)."""
        if self.labels is not None:
            if self.digits is not None and self.digit_tuple() != _classes(self.labels):
                raise ValueError(f"digits={self.digits} and labels={self.labels} disagree: they are one parameter "
                                 "(labels is digits' dataset-neutral name), give one of them")
            self.digits, self.labels = self.labels, None
        return self

    def digit_tuple(self) -> tuple[int, ...]:
        """The classes asked for, sorted and without repeats (so 8,3 and 3,8 are one sequence)."""
        return _classes(self.digits) if self.digits else ALL_DIGITS


def _classes(text: str) -> tuple[int, ...]:
    return tuple(sorted({int(d) for d in text.split(",")}))


class SampleItem(BaseModel):
    png_base64: str = Field(description="the image as a base64 PNG")
    latent: list[float] = Field(description="the latent vector that produced it")
    digit: int | None = Field(None, description="digit the bundled classifier sees (null without classifier)")
    confidence: float | None = Field(None, description="classifier probability of that digit")


class SampleResponse(BaseModel):
    model: str
    seed: int
    n: int
    latent_dim: int
    requested_digit: int | None = None
    samples: list[SampleItem]


class EncodeResponse(BaseModel):
    model: str
    latent_dim: int
    seed: int = Field(description="seed of the posterior sample z")
    mu: list[float]
    logvar: list[float]
    z: list[float] = Field(description="one sample mu + exp(logvar/2) * eps")


def _json_number(value):
    """JSON bodies take numbers as JSON Schema defines them: pydantic's lax mode would also take
    true/false and numeric strings, which the schema says are not numbers."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]  # 13.0 is still 13, as in JSON Schema
JsonFloat = Annotated[float, BeforeValidator(_json_number)]


class DecodeRequest(BaseModel):
    model: ModelName = Field("gan", description=GENERATIVE_HELP, examples=["gan"])
    latents: list[list[JsonFloat]] = Field(min_length=1, description="one latent vector (latent_dim values, each "
                                       "finite and within ±1000) per image (limit DIGITGEN_MAX_LATENTS)",
                                       examples=[[[0.0] * 16]])
    format: Format = Field("png", description="png grid, json (base64 PNGs), or npy uint8 (n, 28, 28)")
    nrow: JsonInt = Field(8, ge=1, le=MAX_NROW, description="images per grid row (png)")
    scale: JsonInt = Field(1, ge=1, description=SCALE_HELP)


class InterpolateRequest(BaseModel):
    model: ModelName = Field("gan", description=GENERATIVE_HELP, examples=["gan"])
    latents: list[list[JsonFloat]] = Field(min_length=2, max_length=2, description="the two end points",
                                       examples=[[[-1.0] * 16, [1.0] * 16]])
    steps: JsonInt = Field(10, ge=2, description=STEPS_HELP)
    method: Method = Field("slerp", description=METHOD_HELP)
    format: StripFormat = Field("png", description=STRIP_HELP)
    scale: JsonInt = Field(1, ge=1, description=SCALE_HELP)


class InterpolateResponse(BaseModel):
    model: str
    method: str
    steps: int
    latents: list[list[float]]
    images_png_base64: list[str]


class ModelInfo(BaseModel):
    name: str
    kind: str = Field(description="what the model does: vae (encodes and decodes) | generator (a GAN's generator: "
                      "decodes only) | classifier")
    dataset: str = Field(description="what it was trained on: MNIST | Fashion-MNIST", examples=["MNIST"])
    classes: list[str] = Field(description="the dataset's class names by index: what digit=/label= and the labels "
                               "of /dataset mean", examples=[[str(d) for d in range(10)]])
    conditional: bool = Field(False, description="a class-conditional generative model: digit=/label= and /dataset "
                              "labels are the class asked for (exact, equal shares), not a classifier's verdict")
    classifier: str | None = Field(description="the loaded classifier that judges its samples (digit=/label=, "
                                   "verified datasets, labels of a model without classes), or null",
                                   examples=["classifier"])
    preset: str | None
    description: str | None
    latent_dim: int | None
    parameters: int
    device: str
    weights_sha256: str
    epochs: int | None
    recipe: dict
    training: dict
    final_losses: dict
    metrics: dict


class ModelsResponse(BaseModel):
    device: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    """200: ready, with the device and models; 503: the error shape (code `not_ready`) plus `status`."""
    status: str = Field(description="ready | starting | stopping")
    device: str | None = None
    models: list[str] = []
