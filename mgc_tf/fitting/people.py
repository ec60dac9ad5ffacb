"""Which faces of a photo set are the same person (dlib descriptors).

A folder given to `python -m mgc_tf.fit` is assumed to be one person; faces
that are not the majority person's are left out. NumPy only.
"""

import numpy as np

# dlib's same-person threshold on descriptor distance (its documentation:
# 99.38 % on LFW at 0.6).
SAME_PERSON_DISTANCE = 0.6


def majority_person(descriptors: np.ndarray,
                    threshold: float = SAME_PERSON_DISTANCE) -> np.ndarray:
  """[N, D] face descriptors -> [N] bool: the faces of the majority person.

  The medoid is the face with the most others within `threshold` (ties: the
  smallest summed distance); the faces within `threshold` of it are kept.
  """
  descriptors = np.asarray(descriptors, np.float64)
  distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
  close = (distances <= threshold).sum(axis=1)
  order = np.lexsort((distances.sum(axis=1), -close))
  return distances[order[0]] <= threshold
