# The two quick-start commands: `make demo` and `make test`. Each sets itself up from scratch.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test setup system-deps lint wheel-check

setup: $(STAMP)

# torch first, pinned to the CPU wheel, so that nothing later pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Debian's Chromium for the browser tests, iproute2 for the loopback-only namespace, PipeWire and
# GStreamer for the virtual camera's test (root only; elsewhere those tests skip and say why).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 || ! command -v wireplumber >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium iproute2 dbus pipewire \
	      pipewire-bin wireplumber gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base; \
	  else echo "note: chromium, iproute2 or pipewire missing and not root: their tests will be skipped"; fi; \
	fi

# The built-in performer on the built-in HD demo target (512 where this host holds it, else 256,
# saying which and why): open http://127.0.0.1:8080
demo: $(STAMP)
	$(VENV)/bin/dancenow serve --target demo-hd

# All tests run inside a network namespace with only loopback (root), so nothing can reach the
# network and WebRTC stays on 127.0.0.1 (see ../shared/notes/webrtc-testing.md).
test: $(STAMP) system-deps
	@if [ "$$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null 2>&1; then \
	  unshare -n sh -c 'ip link set lo up && exec $(PY) -m pytest $(PYTEST_ARGS)'; \
	else $(PY) -m pytest $(PYTEST_ARGS); fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
