# Taskdeck: `make run` opens Taskdeck, `make test` runs the whole suite headless.
# Both set up .venv from nothing but a Python 3.11+ interpreter.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
PYTHON_FOR_VENV := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# What the window needs from the system (Qt's xcb plugin), and what the GUI tests run on:
# the virtual display, a window manager, a system-tray host (trayer, for the tray tests)
# and a D-Bus daemon (a private session bus for the notification tests). Debian/Ubuntu
# package names.
QT_DEBS   := libxcb-cursor0 libxkbcommon-x11-0 libxkbcommon0 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxcb-xfixes0 \
	libxcb-sync1 libxcb-shm0 libxcb-xinerama0 libx11-xcb1 libgl1 libegl1 libfontconfig1 libdbus-1-3
TEST_DEBS := xvfb xauth openbox trayer dbus-daemon

.PHONY: run test bench bench-deps lint typecheck clean venv system-deps system-deps-test screenshots \
	package package-check

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON_FOR_VENV)" || { echo "Taskdeck needs Python 3.11 or newer on PATH." >&2; exit 1; }
	$(PYTHON_FOR_VENV) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

venv: $(VENV)/.installed

# Installs what is missing when run as root with apt-get; otherwise prints the command.
system-deps:
	@./.ci/system-deps $(QT_DEBS)

system-deps-test:
	@./.ci/system-deps $(QT_DEBS) $(TEST_DEBS)

run: venv system-deps
	$(BIN)/python -m desktop

test: venv system-deps-test
	$(BIN)/python -m pytest -p no:cacheprovider -q

# PNGs of the three panes, light and dark, with realistic data, into docs/screenshots/.
screenshots: venv system-deps-test
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m tests.desktop.screenshots docs/screenshots

# A one-folder Linux bundle in dist/taskdeck/ (PyInstaller, packaging/taskdeck.spec), with
# packaging/taskdeck.desktop and the icon beside it. Not part of `make test`.
$(VENV)/.package: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[package]'
	@touch $@

package: $(VENV)/.package
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/taskdeck.spec
	mkdir -p dist/taskdeck/share/applications dist/taskdeck/share/icons/hicolor/scalable/apps \
		dist/taskdeck/share/icons/hicolor/256x256/apps
	cp packaging/taskdeck.desktop dist/taskdeck/share/applications/
	cp packaging/taskdeck.svg dist/taskdeck/share/icons/hicolor/scalable/apps/
	cp packaging/taskdeck.png dist/taskdeck/share/icons/hicolor/256x256/apps/
	@du -sh dist/taskdeck

# Starts the built bundle under Xvfb with a temporary profile and waits (time-boxed) for
# the window's ready line in its log.
package-check: system-deps-test
	packaging/check_bundle.sh dist/taskdeck 90

# rsync is the peer of the sync benchmark (tests/bench/bench_jobs.py): installed when
# missing (as root, with apt-get); otherwise that one figure is reported as missing.
bench-deps:
	@command -v rsync >/dev/null 2>&1 || { \
	if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing rsync for the sync benchmark"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends rsync >/dev/null; \
	else echo "rsync is missing: bench_jobs reports no sync figure (install rsync)" >&2; fi; }

bench: venv bench-deps
	$(BIN)/python -m tests.bench.run_all

lint: venv
	$(BIN)/ruff check core desktop tests
	$(BIN)/ruff format --check core desktop tests
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
