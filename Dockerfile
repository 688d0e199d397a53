# digitgen inference service. Two flavours from one Dockerfile; the build argument TORCH_INDEX picks
# the torch wheel, everything else is the same:
#   CPU  (~1.0 GB, derived):  docker build -t digitgen:0.1.0-cpu .
#   CUDA (5.15 GB, measured): docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130 -t digitgen:0.1.0-cuda .
# The CUDA wheels bring their own CUDA 13.0 runtime, cuDNN and cuBLAS (the nvidia-* wheels), so the
# base stays python:3.11-slim; the host needs only the NVIDIA driver (>= 580) and the container
# toolkit. DIGITGEN_DEVICE picks the device (auto: the GPU when one is visible).
# Run: docker run -p 8000:8000 digitgen:0.1.0-cpu     (README: Images, for the sizes)
# scripts/image-check.sh builds and runs it and checks the result. Behind a TLS-intercepting proxy, give
# the proxy's CA bundle as a build secret (never baked into the image):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .
# BASE: where python:3.11-slim-trixie cannot be pulled, an image with Debian's python3 3.11 stands in
ARG BASE=python:3.11-slim-trixie
FROM ${BASE} AS build
# https://download.pytorch.org/whl/cpu: CPU-only torch (no CUDA kernels, no nvidia-*/triton wheels)
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# = the torch pin in pyproject.toml (tests/test_deploy.py checks); the CPU index's build is
# 2.14.1+cpu, which satisfies `torch==2.14.1`, so `pip install .` keeps it
ARG TORCH_VERSION=2.14.1
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, alone and from its flavour's index (its own dependencies come from there too); a
# layer of its own, so a code change does not download it again
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md LICENSE ./
COPY models ./models
COPY service ./service
COPY trainer ./trainer
COPY digitgen_client ./digitgen_client
# the service only: no training extras; the bundled weights are package data. Then what the
# service never loads: triton (torch.compile's GPU compiler, ~900 MB in the CUDA flavour; eager
# inference does not import it), torch's C++ headers and C++ test binaries
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && pip install . \
 && (pip uninstall -y triton || true) \
 && SITE=/opt/venv/lib/python3.11/site-packages \
 && rm -rf "$SITE/torch/include" "$SITE/torch/test" "$SITE"/torch/bin/test_* \
 && cd / && python -c "import torch, service.main, digitgen_client.cli; print('torch', torch.__version__)"

FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    DIGITGEN_DEVICE=auto
# a fixed uid/gid (10001): Kubernetes' runAsUser/runAsGroup/fsGroup name the same numbers
RUN groupadd --system --gid 10001 digitgen \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin digitgen
# root-owned and read-only for the service (bytecode precompiled by pip): runs on a read-only root
# filesystem with a writable /tmp (compose: read_only + tmpfs, Kubernetes: an emptyDir)
COPY --from=build /opt/venv /opt/venv
# numeric, so Kubernetes' runAsNonRoot can check it without a runAsUser
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
# SIGTERM: uvicorn stops accepting, drains in-flight requests for up to --graceful-timeout, exits 0
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000", "--workers", "auto", "--graceful-timeout", "10"]
