"""Typed request and response bodies (they document /openapi.json)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Format = Literal["png", "json", "npy"]
MAX_NROW = 1024  # images per grid row, wherever a grid is asked for


class Detail(BaseModel):
    detail: str | list = Field(description="what went wrong")


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


class DecodeRequest(BaseModel):
    model: str = Field("gan", min_length=1, max_length=64, examples=["gan", "vae"])
    latents: list[list[float]] = Field(min_length=1, description="one latent vector per image")
    format: Format = "png"
    nrow: int = Field(8, ge=1, le=MAX_NROW)
    scale: int = Field(1, ge=1)


class InterpolateRequest(BaseModel):
    model: str = Field("gan", min_length=1, max_length=64, examples=["gan", "vae"])
    latents: list[list[float]] = Field(min_length=2, max_length=2, description="the two end points")
    steps: int = Field(10, ge=2)
    method: Literal["slerp", "lerp"] = "slerp"
    format: Literal["png", "json"] = "png"
    scale: int = Field(1, ge=1)


class InterpolateResponse(BaseModel):
    model: str
    method: str
    steps: int
    latents: list[list[float]]
    images_png_base64: list[str]


class ModelInfo(BaseModel):
    name: str
    kind: str = Field(description="vae | generator | classifier")
    family: str = Field(description="vae | gan | classifier")
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
    status: str
    device: str | None = None
    models: list[str] = []
