"""The package layering of README's layout: a folder imports only folders
below it (entry points, mgc_tf/*.py, may import anything).

Read from the source with `ast`, so nothing is imported.
"""

import ast
import pathlib

# Top to bottom.
LAYERS = ("methods", "training", "evaluation", "serving", "inference",
          "fitting", "data", "faces2d", "io", "losses", "models", "render",
          "facemodel", "geometry")
# Imports that go up today, in modules being rewritten elsewhere; drop each
# entry when its import goes: (importing file, imported module).
KNOWN_UPWARD = {
    ("mgc_tf/inference/predictor.py", "mgc_tf.training"),
    ("mgc_tf/serving/export_lib.py", "mgc_tf"),
    ("mgc_tf/serving/export_lib.py", "mgc_tf.training"),
}
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _imported_modules(path: pathlib.Path):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if node.module == "mgc_tf":
        yield from (f"mgc_tf.{alias.name}" for alias in node.names)
      elif node.module.startswith("mgc_tf."):
        yield node.module
    elif isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names
                  if alias.name.split(".")[0] == "mgc_tf")


def _upward_imports():
  rank = {name: index for index, name in enumerate(LAYERS)}
  found = set()
  for path in sorted((ROOT / "mgc_tf").glob("*/**/*.py")):
    relative = path.relative_to(ROOT).as_posix()
    layer = relative.split("/")[1]
    for module in _imported_modules(path):
      parts = module.split(".")
      if len(parts) == 1 or parts[1] not in rank:
        # `import mgc_tf` (the front door) or an entry point: above all.
        found.add((relative, "mgc_tf"))
      elif rank[parts[1]] < rank[layer]:
        found.add((relative, ".".join(parts[:2])))
  return found


def test_every_package_folder_is_a_layer():
  folders = {path.name for path in (ROOT / "mgc_tf").iterdir()
             if (path / "__init__.py").exists()}
  assert folders <= set(LAYERS), sorted(folders - set(LAYERS))


def test_imports_only_point_down():
  upward = _upward_imports()
  assert upward <= KNOWN_UPWARD, sorted(upward - KNOWN_UPWARD)

