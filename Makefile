# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create .venv and install masec with pinned dependencies on first use.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench examples hw-demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "masec needs Python 3.11 (torch-mlir ships cp311 wheels only), not " + sys.version.split()[0] + "; run: make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-input -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/masec demo

test: setup
	$(BIN)/python -m pytest -q

# The hardware examples (MLP, CNN block, transformer encoder layer) in examples/generated/hw/, and the
# hardware journey on the encoder: integer lowering, SystemVerilog, Verilator co-simulation.
examples: setup
	$(BIN)/python -m mase_compiler.hw_examples

hw-demo: examples
	$(BIN)/masec compile examples/generated/hw/encoder --target sv -o out/encoder-sv
	$(BIN)/masec sim out/encoder-sv

bench: setup
	$(BIN)/python bench/numerics.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/conformance.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/w4a8.py      # trains bench/zoo.py's LM on first use (about 8 minutes on CPU)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis bench/results
