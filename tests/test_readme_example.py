"""The README's Python example runs as written (on a run the test writes)."""

import os
import re

import numpy as np

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "README.md")


def _python_example() -> str:
  with open(README, encoding="utf-8") as f:
    text = f.read()
  section = text.split("## Python: `mgc_tf.Reconstructor`", 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs(trained_model_dir):
  code = _python_example().replace('"runs/quickstart"',
                                   repr(trained_model_dir))
  assert "runs/quickstart" not in code.split("#")[0]
  namespace = {"crops": np.random.default_rng(0).integers(
      0, 256, [2, 160, 160, 3]).astype(np.uint8)}
  exec(compile(code, README, "exec"), namespace)  # pylint: disable=exec-used
  result, crops_result = namespace["result"], namespace["crops_result"]
  assert len(result) == 1 and result.landmarks_photo.shape == (1, 68, 2)
  assert len(crops_result) == 2
