"""Multi-view groups of a dataset build: load, align and stack their views.

A builder lists its groups (views of one person at one time), loads each view
(`LoadedView`: image and landmarks from its annotation files, or None to
detect them), and `preprocess_views` aligns the views, dropping and counting
bad ones; `stack_group` turns the survivors into the core multi-view features
(`mgc_tf.data.features`), and `unit_group_examples` runs one unit of a build
(groups sharing no view with other units) with skip accounting.
"""

import dataclasses
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple, TypeVar)

import numpy as np

from mgc_tf.data import features
from mgc_tf.io.bad_input import BadExampleError, SkipCounter, skip_bad

View = TypeVar("View")


@dataclasses.dataclass(frozen=True)
class LoadedView:
  """What a dataset's annotation gives for one view, before alignment.

  Attributes:
    image: uint8 RGB [H, W, 3].
    landmarks: float [68, 2] 0-based pixels, or None to detect them.
    info: per-view metadata the builder stores (pose, camera, ...).
  """
  image: np.ndarray
  landmarks: Optional[np.ndarray]
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PreprocessedView:
  """One aligned view of a group.

  Attributes:
    view: the builder's view description (path, name, ...).
    face: mgc_tf.faces2d.preprocessing.PreprocessedFace (crop, landmarks, skin).
    info: LoadedView.info.
    landmarks_detected: the landmarks came from the detector, not a file.
  """
  view: Any
  face: Any
  info: Dict[str, Any]
  landmarks_detected: bool


def preprocess_views(
    views: Sequence[View],
    load: Callable[[View], LoadedView],
    counter: SkipCounter,
    name_of: Callable[[View], str],
    image_size: int,
    landmarker=None,
) -> List[PreprocessedView]:
  """Reads and aligns the views of one group, dropping the bad ones.

  Each view is loaded (image, and landmarks or None to detect them) and
  passed to `mgc_tf.faces2d.preprocessing.preprocess_face`. A view that raises
  BadExampleError (unreadable image or annotation, no face found, bad
  landmarks) is dropped and counted in `counter` under its own reason, a
  good one is counted as kept; the caller decides what to do with a group
  left too small.

  Args:
    views: the group's views, in order.
    load: view -> LoadedView; raises BadExampleError for a bad view.
    counter: where views are counted (kept, or skipped by reason).
    name_of: view -> name used in skip messages.
    image_size: side S of the aligned crop, pixels.
    landmarker: a FaceLandmarker for detection, or None for the default.

  Returns:
    PreprocessedView for each view that worked, in input order.
  """
  from mgc_tf.faces2d import preprocessing  # pylint: disable=g-import-not-at-top
  kept = []
  for view in views:
    try:
      loaded = load(view)
      face = preprocessing.preprocess_face(
          loaded.image, landmarks=loaded.landmarks, landmarker=landmarker,
          image_size=image_size)
    except BadExampleError as error:
      counter.skip(name_of(view), error)
      continue
    counter.keep(name_of(view))
    kept.append(PreprocessedView(view=view, face=face, info=loaded.info,
                                 landmarks_detected=loaded.landmarks is None))
  return kept


# A multi-view group needs a target and at least one source.
MIN_GROUP_VIEWS = 2
# The example key listing the stored views (names given to preprocess_views).
VIEW_NAMES_KEY = "view_names"
# Views report reason of a good view whose group was skipped.
DROPPED_WITH_GROUP = "dropped with its group (too few views)"


def stack_group(kept: Sequence[PreprocessedView], num_views: int,
                identity: str, image_size: int) -> Dict[str, Any]:
  """The core multi-view features of a group's surviving views.

  Args:
    kept: what `preprocess_views` returned for the group.
    num_views: how many views the group had before bad ones were dropped.
    identity: the identity label.
    image_size: side S of the aligned crops, pixels.

  Returns:
    dict with the core keys of `mgc_tf.data.features` filled.

  Raises:
    BadExampleError: "too few views" when fewer than MIN_GROUP_VIEWS survive.
  """
  if len(kept) < MIN_GROUP_VIEWS:
    raise BadExampleError("too few views",
                          f"{len(kept)} of {num_views} views usable")
  faces = [view.face for view in kept]
  return features.stack_views(
      [face.image for face in faces], [face.landmarks for face in faces],
      [face.skin for face in faces], identity, image_size)


def group_tallies(report_name: str) -> Dict[str, SkipCounter]:
  """The tallies of a multi-view group build, in report order.

  Returns:
    {"groups": groups kept/skipped, "views": views kept/dropped}, both
    reported under `report_name` (e.g. "w300_lp/train").
  """
  return {"groups": SkipCounter(report_name, unit="groups"),
          "views": SkipCounter(report_name, unit="views")}


def unit_group_examples(groups: Sequence[Any],
                        make_example: Callable[[Any], Tuple[str, dict]],
                        group_counter: SkipCounter,
                        view_counter: SkipCounter,
                        key_of: Callable[[Any], str],
                        view_names: Iterable[str]
                        ) -> Iterator[Tuple[str, dict]]:
  """The examples of one unit of a build: groups that share no view with
  groups outside it (one 300W-LP source photo, one Multi-PIE capture).

  Dropped views are counted in `view_counter` (by `preprocess_views`),
  skipped groups in `group_counter`; neither reports (the build does, at its
  end: `mgc_tf.data.beam_build.generate`). Each example lists its views in
  "view_names" (the names `preprocess_views` was given): a view of the unit
  (`view_names`) that was good but is stored in no example (its groups kept
  too few views) is moved from kept to dropped under DROPPED_WITH_GROUP, so
  the views report equals what is stored. That is decided per unit, which is
  what lets a Beam worker do it alone.
  """
  stored = set()
  for key, example in skip_bad(groups, make_example, group_counter,
                               key_of=key_of):
    stored.update(example[VIEW_NAMES_KEY])
    yield key, example
  for name in sorted(set(view_names) - stored):
    if view_counter.is_kept(name):
      view_counter.drop_kept(name, BadExampleError(
          DROPPED_WITH_GROUP,
          f"a good view, but no group of it kept {MIN_GROUP_VIEWS} usable "
          "views"))
