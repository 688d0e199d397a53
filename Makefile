# Every target creates .venv when missing and installs into it what it needs: `serve` the service's
# dependencies only (`pip install -e .`), the others the training and test extras as well.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
# one stamp per install: the serving dependencies, and those plus the train and dev extras
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP   := $(VENV)/.installed-dev
# `make train` copies each checkpoint and model card here, where the service loads them from
WEIGHTS := models/weights
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: venv serve test train data evaluate train-fashion data-fashion evaluate-fashion report bench image-check clean

$(SERVE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# '.[train,dev]' includes '.', so this install also stands for the serving one
$(DEV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $@ $(SERVE_STAMP)

venv: $(DEV_STAMP)

serve: $(SERVE_STAMP)
	$(PY) -m service --host $(HOST) --port $(PORT) --workers auto

test: $(DEV_STAMP)
	$(PY) -m pytest tests

data: $(DEV_STAMP)
	$(PY) -m trainer fetch-data

# every bundled MNIST model, in the order trainer/presets.py:BUNDLED gives (a model built on another after it)
train: data
	$(PY) -m trainer train --bundled mnist --weights-dir $(WEIGHTS)

evaluate: $(DEV_STAMP)
	$(PY) -m trainer evaluate

# Fashion-MNIST: the files come from the Debian package dataset-fashion-mnist (fetch-data installs it
# with apt-get when run as root); the same recipes, named fashion-<recipe>
data-fashion: $(DEV_STAMP)
	$(PY) -m trainer fetch-data --dataset fashion

train-fashion: data-fashion
	$(PY) -m trainer train --bundled fashion --weights-dir $(WEIGHTS)

evaluate-fashion: $(DEV_STAMP)
	$(PY) -m trainer evaluate --dataset fashion

report: $(DEV_STAMP)
	$(PY) -m trainer report

# build the Dockerfile with podman (or docker), run the image read-only as uid 10001 and check it
# (scripts/image_check.py); commit its benchmarks/results/image-<date>.json with any change to the
# Dockerfile, docker-compose.yml or deploy/ (tests/test_deploy.py checks it is of the files as they are)
image-check: $(DEV_STAMP)
	scripts/image-check.sh

# the serving benchmark (benchmarks/serve.py; needs wrk on the PATH): the service against a bare
# FastAPI ceiling, results in benchmarks/results/
bench: $(DEV_STAMP)
	$(PY) -m benchmarks.serve --seconds 8

clean:
	rm -rf $(VENV) runs .pytest_cache
