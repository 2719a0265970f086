# Two commands do all setup on a fresh machine:
#   make demo   create the virtual environment, install, run the demo
#   make test   the same environment, then the test suite
#   make test-postgresql   the suite again, every store on a throw-away PostgreSQL cluster
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DB     ?= demo-output/consent.db

.PHONY: install demo test test-postgresql bench clean

install: $(VENV)/.installed

# dlib-bin is dlib's prebuilt wheel (seconds, instead of an 8-minute C++ build
# of the dlib sdist that face-recognition depends on); face-recognition itself
# is installed without its dependencies, for its reference CLI used by bench/.
# setuptools stays below 81: face_recognition_models imports pkg_resources.
# An editable install leaves the package's own modules uncompiled: each command (and
# each scan worker) would compile them again, ~0.1 s, where PYTHONDONTWRITEBYTECODE
# is set; compiled once here, as pip does for a regular install.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools<81"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps face-recognition==1.3.0
	$(BIN)/python -m compileall -q matcher
	touch $@

demo: install
	$(BIN)/python -m matcher.demo --out demo-output

test: install
	$(BIN)/python -m pytest

test-postgresql: install
	$(BIN)/python -m pytest --backend postgresql

clean:
	rm -rf $(VENV) demo-output .pytest_cache
