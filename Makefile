# Every target creates .venv when it is missing, so each is one command on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-aio venv-aio matrix demo demo-aio demo-quick demo-fleet lint bench bench-storm bench-dns results clean venv

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The asyncio clients run in an environment of their own: aiobotocore pins an older botocore than the
# newest one .venv tests. Created on first use, like .venv.
AIO_VENV := .venv-aio
AIO_BIN := $(AIO_VENV)/bin
AIO_STAMP := $(AIO_VENV)/.installed

$(AIO_BIN)/python:
	$(PY) -m venv $(AIO_VENV)

$(AIO_STAMP): $(AIO_BIN)/python pyproject.toml
	$(AIO_BIN)/python -m pip install -q --upgrade pip
	$(AIO_BIN)/python -m pip install -q -e '.[test-aio]'
	touch $(AIO_STAMP)

venv-aio: $(AIO_STAMP)

# The suite on the newest allowed botocore (.venv), with its slowest tests listed; then the asyncio
# suite (tests/aio) on the botocore aiobotocore allows (.venv-aio).
test: $(STAMP) $(AIO_STAMP)
	$(BIN)/python -m ruff check resilient_aws tests benchmarks examples noxfile.py
	$(BIN)/python -m mypy --strict examples
	$(BIN)/python -m pytest -q --durations=15
	$(AIO_BIN)/python -c "import aiobotocore, botocore; print('aio suite: aiobotocore', aiobotocore.__version__, 'botocore', botocore.__version__)"
	$(AIO_BIN)/python -m pytest -q --durations=10 tests/aio

# The suite on the oldest and the newest allowed botocore, each in a fresh venv (noxfile.py), and the
# check that urllib3 1.26 is refused by the declared bound.
matrix: $(STAMP)
	$(BIN)/python -m nox

demo: $(STAMP)
	$(BIN)/python -m resilient_aws drill

demo-quick: $(STAMP)
	$(BIN)/python -m resilient_aws drill --quick

# The drill with the asyncio rows too (plain aiobotocore and resilient_aws.aio), in .venv-aio: every client
# there runs on aiobotocore's botocore.
demo-aio: $(AIO_STAMP)
	$(AIO_BIN)/python -m resilient_aws drill

# 8 processes against the same servers, with shared state through a local redis-server and alone (needs
# redis-server on PATH: Debian's package).
demo-fleet: $(STAMP)
	$(BIN)/python -m resilient_aws drill --fleet 8

lint: $(STAMP)
	$(BIN)/python -m ruff check resilient_aws tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python -m resilient_aws bench overhead

bench-storm: $(STAMP)
	$(BIN)/python -m resilient_aws bench storm

bench-dns: $(STAMP)
	$(BIN)/python -m resilient_aws bench dns

# Every benchmark, in one run, into benchmarks/RESULTS.md (about 10 minutes; run it on a quiet machine).
results: $(STAMP) $(AIO_STAMP)
	$(BIN)/python benchmarks/results.py

# The asyncio suite alone.
test-aio: $(AIO_STAMP)
	$(AIO_BIN)/python -m pytest -q --durations=10 tests/aio

clean:
	rm -rf $(VENV) $(AIO_VENV) .nox .mypy_cache build *.egg-info .pytest_cache .ruff_cache
