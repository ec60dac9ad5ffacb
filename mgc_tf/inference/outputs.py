"""Writing inference results: meshes, coefficient/pose files, landmarks.

Per face (`write_face`), with `<name>` = `<image stem>_face<k>`:

  <name>.obj              mesh with per-vertex colours (trimesh): vertices in
                          camera space (OpenCV axes: x right, y down,
                          z forward), mm
  <name>.npz              arrays (`face_arrays`)
  <name>.json             the same numbers as lists, pose named and in degrees
  <name>_landmarks.txt    68 lines "x y": model landmarks, original pixels

and, for a model with a depth output (`--method=depthnet`):

  <name>_depth.png        16-bit depth of the S crop, 0.1 mm units, 0 = none
  <name>_depth.ply        the face pixels as a point cloud, camera mm
  <name>_depth.npz        depth_mm, suitability, depth_intrinsics, points
"""

import json
import os
import re
from typing import Dict

import numpy as np

from mgc_tf import geometry
from mgc_tf.faces2d import alignment
from mgc_tf.geometry import depth_map
from mgc_tf.inference.faces import CROP_SIZE
from mgc_tf.inference.faces import FaceCrop
from mgc_tf.inference.reconstruct import Reconstruction

# Rotation convention, stated in every JSON file.
POSE_CONVENTION = ("X_cam = R X_model + t, R = Rx(rx) Ry(ry) Rz(rz); camera "
                   "axes x right, y down, z forward (OpenCV); mm")


def write_mesh(path: str, vertices: np.ndarray, triangles: np.ndarray,
               colors: np.ndarray) -> None:
  """Writes a mesh with per-vertex colours (format from the extension).

  Args:
    path: .obj (or .ply / .glb: any trimesh export format).
    vertices: [V, 3] float positions.
    triangles: [F, 3] int vertex indices.
    colors: [V, 3] float RGB in [0, 1].
  """
  import trimesh  # pylint: disable=g-import-not-at-top
  rgb = np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)
  mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64),
                         faces=np.asarray(triangles, np.int64),
                         vertex_colors=rgb, process=False)
  mesh.export(path)


def to_original(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
  """[..., 2] crop pixels -> original pixels through the inverse transform."""
  return alignment.transform_points(alignment.invert_affine(transform),
                                    points).astype(np.float32)


def pose_json(pose: np.ndarray) -> dict:
  """[6] (rz, ry, rx, tx, ty, tz) -> named radians, degrees and mm."""
  pose = np.asarray(pose, np.float64)
  angles = dict(zip(("rz", "ry", "rx"), pose[:3]))
  return {
      "rotation_rad": {k: float(v) for k, v in angles.items()},
      "rotation_deg": {k: float(np.degrees(v)) for k, v in angles.items()},
      "translation_mm": {k: float(v) for k, v in zip(("tx", "ty", "tz"),
                                                     pose[3:])},
  }


def coefficient_groups(layout, coefficients: np.ndarray
                       ) -> Dict[str, np.ndarray]:
  """[..., K] -> {group name: [..., k_group]} by `layout` (decoder.layout)."""
  coefficients = np.asarray(coefficients)
  if coefficients.shape[-1] != layout.size:
    raise ValueError(f"Expected {layout.size} coefficients. Received: "
                     f"shape={coefficients.shape}")
  return {name: coefficients[..., s] for name, s in layout.slices().items()}


def face_arrays(reconstruction: Reconstruction, index: int, crop: FaceCrop,
                layout) -> Dict[str, np.ndarray]:
  """One face's results as named arrays (the .npz contents).

  Keys (shapes for K coefficients, 68 landmarks):
    coefficients [K]; coefficients_<group> for each layout group
    (identity, albedo, expression, pose = offset from the model's default
    pose, lighting); pose [6] full (rz, ry, rx) rad + (tx, ty, tz) mm;
    rotation [3, 3]; translation [3] mm; landmarks_3d [68, 3] camera mm;
    landmarks_2d [68, 2] original pixels; landmarks_2d_crop [68, 2] 224-crop
    pixels; intrinsics [3, 3] (224 crop); crop_transform [2, 3] original ->
    crop pixels; box [4] (x0, y0, x1, y1) original pixels; and, when
    detected, detected_landmarks [68, 2] original and
    detected_landmarks_crop [68, 2] crop pixels.
  """
  r, i = reconstruction, index
  arrays = {"coefficients": r.coefficients[i]}
  for name, values in coefficient_groups(layout, r.coefficients[i]).items():
    arrays[f"coefficients_{name}"] = values
  arrays.update(
      pose=r.pose[i], rotation=r.rotation[i], translation=r.translation[i],
      landmarks_3d=r.landmarks_3d[i],
      landmarks_2d=to_original(crop.transform, r.landmarks_2d[i]),
      landmarks_2d_crop=r.landmarks_2d[i], intrinsics=r.intrinsics[i],
      crop_transform=crop.transform, box=crop.box)
  if crop.landmarks is not None:
    arrays["detected_landmarks"] = to_original(crop.transform, crop.landmarks)
    arrays["detected_landmarks_crop"] = crop.landmarks
  return arrays


def _rounded(array: np.ndarray, decimals: int = 4):
  return np.round(np.asarray(array, np.float64), decimals).tolist()


def face_json(arrays: Dict[str, np.ndarray], layout, source: str,
              face_index: int, image_shape, model: str,
              files: Dict[str, str]) -> dict:
  """The JSON document of one face, from its `face_arrays`."""
  doc = {
      "source": source,
      "face_index": face_index,
      "image_size_hw": [int(image_shape[0]), int(image_shape[1])],
      "crop_size": CROP_SIZE,
      "model": model,
      "pose_convention": POSE_CONVENTION,
      "pose": pose_json(arrays["pose"]),
      "pose_offset": pose_json(arrays["coefficients_pose"]),
      "coefficients": {name: _rounded(arrays[f"coefficients_{name}"], 6)
                       for name in layout.names},
      "landmarks_2d": _rounded(arrays["landmarks_2d"], 2),
      "landmarks_2d_crop": _rounded(arrays["landmarks_2d_crop"], 2),
      "crop_transform": _rounded(arrays["crop_transform"], 6),
      "box": _rounded(arrays["box"], 2),
      "files": files,
  }
  if "detected_landmarks" in arrays:
    doc["detected_landmarks"] = _rounded(arrays["detected_landmarks"], 2)
  return doc


# An innermost JSON list of numbers, as json.dumps(indent=...) spreads it.
_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][^\[\]{}\"]*?)\s*\]")


def write_json(path: str, document) -> None:
  """Writes indented JSON with each innermost list of numbers on one line."""
  text = json.dumps(document, indent=1)
  text = _NUMBER_LIST.sub(
      lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text + "\n")



def write_face(output_dir: str, name: str, reconstruction: Reconstruction,
               index: int, crop: FaceCrop, decoder, source: str,
               face_index: int, image_shape, model: str,
               write_obj: bool = True) -> Dict[str, str]:
  """Writes one face's .obj, .npz, .json and _landmarks.txt.

  Args:
    output_dir: existing folder.
    name: file stem, e.g. "photo_face0".
    reconstruction: the batch holding the face.
    index: the face's row in `reconstruction`.
    crop: its FaceCrop.
    decoder: the FaceDecoder (triangles, layout).
    source: the input path (recorded in the JSON).
    face_index: k, the face's rank in its image (0 = largest).
    image_shape: (H, W, ...) of the original image.
    model: the predictor's description.
    write_obj: also write the mesh.

  Returns:
    {kind: path} of the files written.
  """
  base = os.path.join(output_dir, name)
  files = {"npz": base + ".npz", "json": base + ".json",
           "landmarks": base + "_landmarks.txt"}
  if write_obj:
    files["mesh"] = base + ".obj"
    write_mesh(files["mesh"], reconstruction.vertices[index],
               decoder.triangles.numpy(), reconstruction.colors[index])
  files.update(write_depth(base, reconstruction, index, decoder))
  arrays = face_arrays(reconstruction, index, crop, decoder.layout)
  np.savez(files["npz"], **arrays)
  np.savetxt(files["landmarks"], arrays["landmarks_2d"], fmt="%.3f")
  write_json(files["json"], face_json(
      arrays, decoder.layout, source, face_index, image_shape,
      model, {k: os.path.basename(v) for k, v in files.items()}))
  return files


def depth_arrays(reconstruction: Reconstruction, index: int, decoder
                 ) -> Dict[str, np.ndarray]:
  """A depth method's per-pixel outputs of one face, in millimetres.

  DepthNet's D' (`mgc_tf.geometry.depth_map`) becomes camera z with
  xi_V = t_z of the reconstructor's view. Empty when the model has no
  depth output.

  Returns:
    depth_mm [S, S] float32 camera z, 0 off the face; suitability [S, S]
    (when given); depth_intrinsics [3, 3] K of the S crop; depth_points
    [P, 3] float32 camera-space points of the face pixels, mm.
  """
  extras = reconstruction.extras or {}
  if depth_map.NORMALIZED_OUTPUT not in extras:
    return {}
  normalized = np.asarray(extras[depth_map.NORMALIZED_OUTPUT][index],
                          np.float32)
  size = normalized.shape[0]
  depth = depth_map.denormalize_depth(
      normalized[None], reconstruction.translation[index:index + 1, 2])
  k = geometry.intrinsics(decoder.focal_length * size / decoder.image_size,
                          image_size=size)[None]
  points = depth_map.depth_points(depth, k).numpy()[0]
  depth = depth.numpy()[0, ..., 0]
  out = {"depth_mm": depth, "depth_intrinsics": k.numpy()[0],
         "depth_points": points[depth > 0].astype(np.float32)}
  if depth_map.SUITABILITY_OUTPUT in extras:
    out["suitability"] = np.asarray(
        extras[depth_map.SUITABILITY_OUTPUT][index], np.float32)[..., 0]
  return out


def write_depth_png(path: str, depth_mm: np.ndarray) -> None:
  """[S, S] mm -> 16-bit PNG of round(mm * PNG_UNITS_PER_MM), 0 = none."""
  import cv2  # pylint: disable=g-import-not-at-top
  scaled = np.round(np.clip(depth_mm, 0.0, None) * depth_map.PNG_UNITS_PER_MM)
  if not cv2.imwrite(path, np.clip(scaled, 0, 65535).astype(np.uint16)):
    raise OSError(f"Could not write {path}")


def write_point_cloud(path: str, points: np.ndarray) -> None:
  """[P, 3] camera-space points (mm) -> ASCII .ply of vertices only."""
  with open(path, "w", encoding="ascii") as f:
    f.write("ply\nformat ascii 1.0\ncomment camera frame, OpenCV axes, mm\n"
            f"element vertex {len(points)}\nproperty float x\n"
            "property float y\nproperty float z\nend_header\n")
    np.savetxt(f, np.asarray(points, np.float32).reshape([-1, 3]),
               fmt="%.3f")


def write_depth(base: str, reconstruction: Reconstruction, index: int,
                decoder) -> Dict[str, str]:
  """Writes <base>_depth.png (16 bit, see `write_depth_png`), the face
  pixels as <base>_depth.ply, and <base>_depth.npz (depth_arrays); nothing
  when the model has no depth output. Returns {kind: path}."""
  arrays = depth_arrays(reconstruction, index, decoder)
  if not arrays:
    return {}
  files = {"depth_png": base + "_depth.png", "depth_ply": base + "_depth.ply",
           "depth_npz": base + "_depth.npz"}
  write_depth_png(files["depth_png"], arrays["depth_mm"])
  write_point_cloud(files["depth_ply"], arrays["depth_points"])
  np.savez(files["depth_npz"], **arrays)
  return files
