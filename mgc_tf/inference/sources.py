"""What `--input` names: an image, a folder of images, or a video.

Images and videos are told apart by extension (any case): images
`images.IMAGE_EXTENSIONS`, videos `video_io.VIDEO_EXTENSIONS`. A
single file is opened once here, so an unreadable one fails at once with its
path; inside a folder, unreadable images are skipped and counted instead.
"""

import dataclasses
import enum
import os
from typing import List

from mgc_tf.faces2d import preprocessing
from mgc_tf.io import images
from mgc_tf.io import video_io
from mgc_tf.io.bad_input import BadExampleError
from mgc_tf.io.bad_input import read_image_rgb

ACCEPTED = (
    f"an image file ({' '.join(images.IMAGE_EXTENSIONS)}), a folder "
    f"of such images (not searched recursively), or a video file "
    f"({' '.join(video_io.VIDEO_EXTENSIONS)})")


class InferenceInputError(ValueError):
  """--input cannot be used; the message names the path and what works."""


class InputKind(enum.Enum):
  IMAGES = "images"
  VIDEO = "video"


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Resolved --input.

  Attributes:
    kind: IMAGES (one or more image files) or VIDEO (one video file).
    paths: the image files, sorted, or [the video].
  """
  kind: InputKind
  paths: List[str]


def resolve_input(path: str) -> Inputs:
  """Classifies and checks `path`.

  Raises:
    InferenceInputError: missing path, unknown extension, an unreadable
      image or video file, or a folder without images.
  """
  if not path:
    raise InferenceInputError(f"--input is required: {ACCEPTED}.")
  if os.path.isdir(path):
    paths = preprocessing.list_image_files(path)
    if not paths:
      raise InferenceInputError(
          f"{path} is a folder without image files; --input takes "
          f"{ACCEPTED}.")
    return Inputs(InputKind.IMAGES, paths)
  if not os.path.exists(path):
    raise InferenceInputError(f"{path} does not exist; --input takes "
                              f"{ACCEPTED}.")
  extension = os.path.splitext(path)[1].lower()
  try:
    if extension in images.IMAGE_EXTENSIONS:
      read_image_rgb(path)
      return Inputs(InputKind.IMAGES, [path])
    if extension in video_io.VIDEO_EXTENSIONS:
      with video_io.VideoReader(path):
        pass
      return Inputs(InputKind.VIDEO, [path])
  except BadExampleError as error:
    raise InferenceInputError(
        f"{path} cannot be read ({error}); --input takes {ACCEPTED}."
    ) from error
  raise InferenceInputError(
      f"{path} has an unknown extension {extension!r}; --input takes "
      f"{ACCEPTED}.")
