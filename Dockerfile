# digitgen inference service. One image for CPU and GPU hosts: the pinned torch wheel from PyPI
# ships its CUDA runtime; DIGITGEN_DEVICE picks the device (compose's gpu profile sets cuda).
# Build: docker build -t digitgen .    Run: docker run -p 8000:8000 digitgen
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md LICENSE ./
COPY models ./models
COPY service ./service
COPY trainer ./trainer
# the service only: no training extras; the bundled weights are package data
RUN pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIGITGEN_DEVICE=auto
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin digitgen
COPY --from=build /opt/venv /opt/venv
USER digitgen
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000", "--graceful-timeout", "10"]
