"""The package's layers (DESIGN section 3): imports only point down.

A folder of `mgc_tf` may import itself and the folders listed below it,
never one above; nothing outside `training/` imports `training/` (the
entry points `mgc_tf/*.py` excepted, which may import anything). Every
`import` statement counts, also those inside functions.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "mgc_tf")

# Top to bottom.
LAYERS = ("methods", "training", "evaluation", "serving", "inference",
          "fitting", "data", "faces2d", "io", "losses", "models", "render",
          "facemodel", "geometry")


def _imported_modules(path):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), filename=path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if node.module == "mgc_tf":
        for alias in node.names:  # from mgc_tf import geometry
          yield node.lineno, f"mgc_tf.{alias.name}"
      else:
        yield node.lineno, node.module


def _layer_of_module(module):
  parts = module.split(".")
  if parts[0] != "mgc_tf" or len(parts) < 2:
    return None
  return parts[1]


def _package_files():
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        yield os.path.join(root, name)


def import_violations():
  """'file:line imports module (why)' for every import that points up."""
  problems = []
  for path in _package_files():
    relative = os.path.relpath(path, PACKAGE)
    parts = relative.split(os.sep)
    if len(parts) == 1:
      continue  # an entry point (or the package's front door)
    own = parts[0]
    if own not in LAYERS:
      problems.append(f"{relative}: folder {own!r} is not in LAYERS")
      continue
    for line, module in _imported_modules(path):
      target = _layer_of_module(module)
      if target is None or target == own:
        continue
      where = f"mgc_tf/{relative}:{line} imports {module}"
      if target not in LAYERS:
        problems.append(f"{where} (a top-level module: entry points only)")
      elif target == "training":
        problems.append(f"{where} (only training/ and the entry points "
                        "import training/)")
      elif LAYERS.index(target) < LAYERS.index(own):
        problems.append(f"{where} ({target}/ is above {own}/)")
  return sorted(problems)


def test_imports_only_point_down_the_layers():
  assert import_violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
  folder = tmp_path / "mgc_tf"
  (folder / "geometry").mkdir(parents=True)
  (folder / "geometry" / "bad.py").write_text(
      "def f():\n  from mgc_tf.render import renderer\n")
  (folder / "evaluation").mkdir()
  (folder / "evaluation" / "bad.py").write_text(
      "from mgc_tf.training import progress\nfrom mgc_tf import geometry\n")
  monkeypatch.setattr(__import__(__name__), "PACKAGE", str(folder))
  found = import_violations()
  assert any("geometry/bad.py:2 imports mgc_tf.render " in p
             for p in found), found
  assert any("evaluation/bad.py:1 imports mgc_tf.training " in p
             for p in found), found
  assert not any("imports mgc_tf.geometry" in p for p in found)


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_documented(layer):
  path = os.path.join(PACKAGE, layer, "__init__.py")
  if not os.path.exists(path):
    pytest.skip(f"{layer}/ does not exist yet")
  with open(path, encoding="utf-8") as f:
    assert ast.get_docstring(ast.parse(f.read())), f"{layer}/__init__.py"
