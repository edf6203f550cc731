# The two commands of the README are `make run` and `make test`; each installs what it needs.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/trademaster/v1/*.proto)
GEN_STAMP := proto/trademaster/v1/.generated
# The web dashboard (clients/web): npm ci from the lock file, protobuf-es codegen, vite build into dist/.
WEB := clients/web
WEB_DEPS := $(WEB)/node_modules/.ci-stamp
WEB_SOURCES := $(shell find $(WEB)/src -path $(WEB)/src/gen -prune -o -type f -print) \
	$(addprefix $(WEB)/,index.html package.json tsconfig.json vite.config.ts)
WEB_BUILD := $(WEB)/dist/index.html
# The end-to-end dashboard test drives Debian's chromium (Playwright's own browsers are not downloaded).
CHROMIUM := /usr/bin/chromium

.PHONY: run test soak bench lint proto web clean

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

$(WEB_DEPS): $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund
	@touch $@

$(WEB_BUILD): $(WEB_DEPS) $(STAMP) $(PROTOS) $(WEB_SOURCES)
	cd $(WEB) && npm run gen && npm run build

web: $(WEB_BUILD)

$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

run: $(GEN_STAMP) $(WEB_BUILD)
	$(BIN)/trademaster serve --web $(ARGS)

test: $(GEN_STAMP) $(WEB_BUILD) $(CHROMIUM)
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
	rm -rf $(WEB)/node_modules $(WEB)/dist $(WEB)/src/gen
