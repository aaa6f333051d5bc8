# edgebench: make install | make demo | make test
# Works on a fresh machine with Python >= 3.10 and make; everything else comes
# from the package registry.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
OVVENV := .venv-openvino
BIN := $(VENV)/bin
EXTRAS := onnx,litert,controller,postgres,dev

.PHONY: install demo test lint fmt protos check-protos bench clean openvino

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# ONNX Runtime's OpenVINO EP replaces the onnxruntime distribution, so it lives
# in its own venv: a real partitioning EP for the placement tests. It also
# proves the agent works with a non-"onnxruntime" vendor build.
openvino: $(OVVENV)/.installed

$(OVVENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OVVENV)
	$(OVVENV)/bin/python -m pip install -q --upgrade pip
	$(OVVENV)/bin/python -m pip install -q onnxruntime-openvino
	$(OVVENV)/bin/python -m pip install -q -e .
	touch $@

demo: install
	$(BIN)/edgebench demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

protos: install
	$(BIN)/python protos/generate.py

check-protos: install
	$(BIN)/python protos/generate.py --check

test: install openvino lint
	$(BIN)/python -m pytest -q

bench: install openvino
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OVVENV) edgebench-demo .pytest_cache
