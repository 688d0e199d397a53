"""The bundled `gan` served by LitServe: POST /predict {"seed": S} (seed optional) -> image/png.

    python benchmarks/peers/litserve_app.py --port P [--max-batch-size 16 --batch-timeout 0.002]
"""
from __future__ import annotations

import argparse

import litserve as ls
import torch
from starlette.responses import Response

from digitgen_gan import latent, load_generator, pngs


class GanAPI(ls.LitAPI):
    def setup(self, device):
        self.generator = load_generator()

    def decode_request(self, request):
        return latent(request.get("seed"), self.generator.latent_dim)[0]

    def batch(self, inputs):
        return torch.stack(inputs)

    def predict(self, latents):
        if latents.dim() == 1:  # unbatched: one latent
            return pngs(self.generator, latents[None])[0]
        return pngs(self.generator, latents)

    def unbatch(self, output):
        return output

    def encode_response(self, png):
        return Response(png, media_type="image/png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout", type=float, default=0.0)
    args = parser.parse_args()
    api = GanAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu")
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
