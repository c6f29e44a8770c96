# The two commands: `make run` and `make test`. Everything else is what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

export CMS_DATA_DIR ?= $(CURDIR)/var
export WAGTAILADMIN_BASE_URL ?= http://$(HOST):$(PORT)
# `make run` as root (a container): nginx's workers run as this user and read
# the data folder through its group; the services write with umask 027 and
# that group (docs/deploy.md, "Files and who may read them").
NGINX_USER ?= www-data
AS_SERVICE := deploy/scripts/as-service $(NGINX_USER)
NGINX_USER_ARG := $(if $(filter 0,$(shell id -u)),--user $(NGINX_USER))

SYSTEM_DEPS := nginx:nginx-light ffmpeg:ffmpeg ffprobe:ffmpeg node:nodejs npm:npm
# Browser tests need Chromium and a font; the RQ test Redis; the TLS test openssl and curl.
TEST_SYSTEM_DEPS := chromium:chromium /usr/share/fonts/truetype/liberation:fonts-liberation \
	redis-server:redis-server openssl:openssl curl:curl

.PHONY: run test test-stack-layer test-other-layer test-postgres setup system-deps test-system-deps prepare frontend wheel lint-imports bench-deps bench-serve bench-load bench-upload bench-transcode bench-hls clean

run: setup prepare
	@echo "Starting nginx, gunicorn and the task worker on http://$(HOST):$(PORT)/ (Ctrl-C stops them)"
	exec $(AS_SERVICE) $(BIN)/honcho --no-colour -f Procfile start

# --ds: an exported DJANGO_SETTINGS_MODULE would otherwise win over pyproject.toml.
# --durations=20: the slowest tests, printed at the end of every run.
# lint-imports first: a layer imported the wrong way fails the run before any test.
# The whole suite is two pytest processes side by side (docs/testing.md, "How long
# it takes"): the tests on the shared stacks, which spend much of their time waiting
# on servers or a browser, with the two marked standalone (make run, a fresh
# install), and the rest (Django-level tests and the few whose own stack waits on a
# clock); tests/conftest.py's --layer draws the line. Each has its own data folder
# and test database and prints its own report when it ends. With PYTEST_ARGS, one
# process runs what they select.
PYTEST := $(BIN)/pytest --ds=cms.settings.test --durations=20

test: setup test-system-deps lint-imports
ifeq ($(strip $(PYTEST_ARGS)),)
	@echo "Running the shared-stack tests and the other tests side by side; each prints its report when it ends."
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-stack-layer test-other-layer
else
	$(PYTEST) $(PYTEST_ARGS)
endif

test-stack-layer:
	$(PYTEST) --layer=stack

test-other-layer:
	$(PYTEST) --layer=other

# The stack-level tests again, on a throwaway PostgreSQL server (CI runs both), and the
# tests marked postgres (the remembered-decision unit tests; ~1 min).
# make run's own test and the install test are left out: they always use their own SQLite database.
test-postgres: setup test-system-deps
	deploy/scripts/with-test-postgres $(BIN)/pytest --ds=cms.settings.test --durations=20 -m "integration or browser or postgres" --ignore=tests/test_make_run.py \
		--ignore=tests/test_install_wheel.py $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed frontend

# The one-way layers contract in pyproject.toml ([tool.importlinter]).
lint-imports: $(VENV)/.installed
	$(BIN)/lint-imports --no-cache

# The wheel a site installs (docs/install.md): the three apps with the built
# player, so the site needs no npm.
# Always rebuilt (dist/wagtail_private_video-<version>-py3-none-any.whl).
wheel: setup
	rm -rf build
	$(BIN)/python -m build --wheel --outdir dist
	rm -rf build

system-deps:
	@deploy/scripts/ensure-system-packages $(SYSTEM_DEPS)

test-system-deps: tests/s3rver/node_modules/.package-lock.json tests/axe/node_modules/.package-lock.json
	@deploy/scripts/ensure-system-packages $(TEST_SYSTEM_DEPS)

# s3rver: the S3 server the S3 tests run against (it checks presigned signatures).
tests/s3rver/node_modules/.package-lock.json: tests/s3rver/package.json tests/s3rver/package-lock.json
	cd tests/s3rver && npm ci --no-audit --no-fund
	touch $@

# axe-core: the accessibility engine tests/test_player_a11y.py injects into the player page.
tests/axe/node_modules/.package-lock.json: tests/axe/package.json tests/axe/package-lock.json
	cd tests/axe && npm ci --no-audit --no-fund
	touch $@

# dev includes [site]: gunicorn, honcho, dj-database-url, psycopg, S3 and RQ.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

frontend: media_access/static/media_access/player/.built private_video/static/private_video/uploader/.built

frontend/node_modules/.package-lock.json: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

media_access/static/media_access/player/.built: frontend/node_modules/.package-lock.json frontend/build.mjs $(wildcard frontend/src/*)
	cd frontend && node build.mjs
	touch $@

# The resumable uploader (Uppy's prebuilt bundle); the same build writes both.
private_video/static/private_video/uploader/.built: frontend/node_modules/.package-lock.json frontend/build.mjs $(wildcard frontend/src/*)
	cd frontend && node build.mjs
	touch $@

prepare:
	deploy/scripts/prepare-data-dir "$(CMS_DATA_DIR)" $(NGINX_USER)
	$(AS_SERVICE) $(BIN)/python manage.py migrate --noinput
	$(AS_SERVICE) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(AS_SERVICE) $(BIN)/python manage.py render_nginx_config --listen $(HOST):$(PORT) $(NGINX_USER_ARG) \
		--output $(CMS_DATA_DIR)/nginx/nginx.conf
	$(AS_SERVICE) $(BIN)/python manage.py bootstrap_site --base-url http://$(HOST):$(PORT)

# What the load benchmarks need: the venv (locust is in [dev]) and wrk (Debian), the client of bench-serve and bench-load.
bench-deps: $(VENV)/.installed system-deps
	@deploy/scripts/ensure-system-packages wrk:wrk

# Serving benchmark (docs/benchmarks.md): nginx static vs X-Accel vs FileResponse vs a bare view (wrk),
# then the policy vs a bare view on a throwaway PostgreSQL with 500 signed-in viewers, logins and publishes beside.
bench-serve: bench-deps
	$(BIN)/python bench/serve.py
	deploy/scripts/with-test-postgres $(BIN)/python bench/serve.py --postgres

# Load benchmark (docs/benchmarks.md): 500 HLS viewers (locust) through nginx + 3 gunicorn workers on a throwaway
# PostgreSQL, logins and publishes beside; p95 of the Python answers, and no segment request in gunicorn's log.
bench-load: bench-deps
	deploy/scripts/with-test-postgres $(BIN)/python bench/load.py

# Upload benchmark (docs/benchmarks.md): a 2 GiB video through the resumable (tus) path vs an nginx-only PUT of the
# same bytes, and the gunicorn workers' memory during the upload.
bench-upload: bench-deps
	$(BIN)/python bench/upload.py

# Transcoding benchmark (docs/benchmarks.md): ladder speed, one decode vs per rung, time to playable, storage.
# PYTHONPATH: the demo site (cms) is not part of the installed package.
bench-transcode: setup
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/transcode.py

# HLS benchmark (docs/benchmarks.md): 6 s segment byte ranges through the signed-token path (with the viewer
# cookie) vs nginx static of the same bytes, wrk as the client.
bench-hls: bench-deps
	$(BIN)/python bench/hls.py

clean:
	rm -rf $(VENV) frontend/node_modules media_access/static/media_access/player private_video/static/private_video/uploader tests/s3rver/node_modules tests/axe/node_modules test-output \
		dist build
