# The two commands of the README are `make run` and `make test`; each installs what it needs.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/trademaster/v1/*.proto)
GEN_STAMP := proto/trademaster/v1/.generated

.PHONY: run test soak bench lint proto clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

$(GEN_STAMP): $(PROTOS) $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto \
		--grpc_python_out=proto $(PROTOS)
	@touch $@

proto: $(GEN_STAMP)

run: $(GEN_STAMP)
	$(BIN)/trademaster serve $(ARGS)

test: $(GEN_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

soak: $(GEN_STAMP)
	$(BIN)/python -m pytest -q -m soak $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

bench: $(GEN_STAMP)
	$(BIN)/python -m tests.bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(GEN_STAMP) proto/trademaster/v1/*_pb2*.py proto/trademaster/v1/*_pb2*.pyi
