# Every target creates .venv when missing and installs the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: venv serve test train data evaluate report bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(PY) -m service --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest tests

data: $(STAMP)
	$(PY) -m trainer fetch-data

train: data
	$(PY) -m trainer train --preset classifier
	$(PY) -m trainer train --preset vae-seed
	$(PY) -m trainer train --preset gan-seed
	$(PY) -m trainer train --preset vae
	$(PY) -m trainer train --preset gan

evaluate: $(STAMP)
	$(PY) -m trainer evaluate

report: $(STAMP)
	$(PY) -m trainer report

clean:
	rm -rf $(VENV) runs .pytest_cache
