"""The bundled `gan` served by BentoML: POST /sample {"seed": S} (seed optional) -> image/png.

    bentoml serve bentoml_service:GanSample --working-dir benchmarks/peers --port P
"""
from __future__ import annotations

from typing import Annotated

import bentoml
from bentoml.validators import ContentType

from digitgen_gan import latent, load_generator, pngs


# one worker process, and no access log (neither digitgen nor the ceiling writes one in these runs)
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class GanSample:
    def __init__(self) -> None:
        self.generator = load_generator()

    @bentoml.api(route="/sample")
    def sample(self, seed: int | None = None) -> Annotated[bytes, ContentType("image/png")]:
        return pngs(self.generator, latent(seed, self.generator.latent_dim))[0]
