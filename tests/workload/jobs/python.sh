# Python: a virtualenv, `pip install` of a local wheel (no index), then pytest and unittest.
prepare() {
  local fx=$HOME/fixtures/python
  rm -rf "$fx" && mkdir -p "$fx/src/greet" "$fx/wheels"
  cat > "$fx/src/pyproject.toml" <<P
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "greet"
version = "1.0.0"
P
  echo 'def hello(name): return "hello " + name' > "$fx/src/greet/__init__.py"
  python3 -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$fx/wheels" "$fx/src"
}
run() {
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
  # Debian's pytest is a system package: the venv sees it
  python3 -m venv --system-site-packages .venv
  .venv/bin/pip install --quiet --find-links "$HOME/fixtures/python/wheels" greet
  mkdir -p tests
  cat > tests/test_greet.py <<'P'
import unittest
import greet
class GreetTest(unittest.TestCase):
    def test_hello(self):
        self.assertEqual(greet.hello("agent"), "hello agent")
P
  .venv/bin/python -m pytest -q tests
  .venv/bin/python -m unittest discover -s tests -v
}
