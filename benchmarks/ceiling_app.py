"""The bare ceiling: a FastAPI app on the same uvicorn returning a constant 28x28 PNG.
`uvicorn benchmarks.ceiling_app:app` — what the framework itself can do on this machine."""
import io

from fastapi import FastAPI, Response
from PIL import Image

_buffer = io.BytesIO()
Image.new("L", (28, 28), 0).save(_buffer, format="PNG")
PNG = _buffer.getvalue()

app = FastAPI()


@app.get("/sample")
async def sample() -> Response:
    return Response(PNG, media_type="image/png")
