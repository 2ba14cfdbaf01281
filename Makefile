# Two commands for a new user: `make run` starts the whole stack, `make test` runs the tests.
# Both create .venv with $(PYTHON) (3.11 or newer) and install the project into it first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PROTOS := $(wildcard proto/analytics/v1/*.proto proto/analytics/internal/v1/*.proto)
# The client library (client/) carries its own copy of the code of the protos it speaks, so that
# it installs without the backend: see client_protoc below.
CLIENT_PROTOS := proto/analytics/v1/event.proto proto/analytics/v1/ingest.proto
CLIENT_GEN := client/analytics_client/_proto

.PHONY: run test check lint typecheck layers proto proto-check lock clean

run: $(STAMP)
	$(BIN)/analytics-run

test: $(STAMP)
	$(BIN)/pytest

check: lint typecheck layers proto-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The layers' import rules ([tool.importlinter] in pyproject.toml): a wrong import fails with
# the rule it breaks.
layers: $(STAMP)
	$(BIN)/lint-imports

# Regenerate gen/ (messages, gRPC stubs and their .pyi stubs) and the client's copy from proto/.
proto: $(STAMP)
	rm -rf gen/analytics
	$(call protoc,gen)
	$(call client_protoc,$(CLIENT_GEN))

# Fail when gen/ or the client's copy is not what proto/ generates.
proto-check: $(STAMP)
	rm -rf $(VENV)/gen-check && mkdir -p $(VENV)/gen-check
	$(call protoc,$(VENV)/gen-check)
	diff -r -x __pycache__ $(VENV)/gen-check/analytics gen/analytics
	$(call client_protoc,$(VENV)/gen-check/client)
	diff -r -x __pycache__ $(VENV)/gen-check/client $(CLIENT_GEN)

# Re-pin every dependency to the newest release that pyproject.toml allows.
lock:
	rm -rf $(VENV)/lock && $(PYTHON) -m venv $(VENV)/lock
	$(VENV)/lock/bin/pip install --quiet --upgrade pip
	$(VENV)/lock/bin/pip install --quiet '.[dev]' ./client
	$(VENV)/lock/bin/pip freeze --exclude analytics-backend --exclude analytics-client > constraints.txt
	rm -rf $(VENV)/lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

$(STAMP): pyproject.toml client/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e ./client
	rm -f $(VENV)/.installed-*
	touch $@

define protoc
	mkdir -p $(1)/analytics/v1 $(1)/analytics/internal/v1
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=$(1) --mypy_out=$(1) --grpc_python_out=$(1) --mypy_grpc_out=$(1) $(PROTOS)
	touch $(1)/analytics/__init__.py $(1)/analytics/v1/__init__.py $(1)/analytics/py.typed \
		$(1)/analytics/internal/__init__.py $(1)/analytics/internal/v1/__init__.py
endef

# The client's copy: the same generated code for CLIENT_PROTOS, its imports of analytics.v1
# moved to analytics_client._proto (and the module names its classes report likewise). The
# descriptors are byte for byte the backend's, so the two copies share one set of message
# classes when a process imports both.
define client_protoc
	rm -rf $(1) $(1).tmp && mkdir -p $(1) $(1).tmp
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=$(1).tmp --mypy_out=$(1).tmp --grpc_python_out=$(1).tmp \
		--mypy_grpc_out=$(1).tmp $(CLIENT_PROTOS)
	for file in $(1).tmp/analytics/v1/*; do \
		sed -e 's/^from analytics\.v1 import /from analytics_client._proto import /' \
			-e "s/^\(_builder\.BuildTopDescriptorsAndMessages(DESCRIPTOR, \)'analytics\.v1\./\1'analytics_client._proto./" \
			$$file > $(1)/$${file##*/}; \
	done
	rm -rf $(1).tmp
	touch $(1)/__init__.py
endef

# `make bench`: the performance benchmark (bench/): starts the stack on embedded servers, runs
# every figure and its reference, prints one table (also in bench/results/). About 10 minutes;
# `make bench BENCH_ARGS=--quick` for a short development run. The raw ASGI reference's
# orjson goes to its own directory, out of the services' reach. Needs wrk (apt-get install wrk).
BENCH_REFERENCE := $(VENV)/bench-reference
.PHONY: bench
bench: $(STAMP)
	@stamp=$(BENCH_REFERENCE)/.installed-$$(cksum < bench/reference-requirements.txt | cut -d' ' -f1); \
	test -f $$stamp || { rm -rf $(BENCH_REFERENCE) && \
		$(BIN)/python -m pip install --quiet --target $(BENCH_REFERENCE) \
			-r bench/reference-requirements.txt && touch $$stamp; }
	$(BIN)/python -m bench --reference-path $(BENCH_REFERENCE) $(BENCH_ARGS)
