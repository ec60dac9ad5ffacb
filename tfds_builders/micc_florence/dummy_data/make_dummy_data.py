"""Writes the MICC Florence dummy data in the real layout and file formats.

Run from the repository root:
  PYTHONPATH=. python3 tfds_builders/micc_florence/dummy_data/make_dummy_data.py

Scans are the embedded synthetic face model's mean shape (mm) decimated to a
15 x 11 grid, written as Wavefront .obj (with texture coordinates, as scanner
exports have) and VRML 2.0 IndexedFaceSet (.wrl). Videos are short clips of
crops of skimage's astronaut photograph (a real face dlib finds), as a raw
Motion-JPEG stream (.mjpg, like MICC's) and as an MJPG .avi.

  subject_01  Model/frontal1/{obj,vrml}; Video/Indoor-Cooperative.mjpg;
              Video/PTZ-Indoor.avi whose frame 5 shows no face (dropped)
  subject_02  Model/frontal1/vrml only (a Transform node above the mesh);
              Video/Indoor-Cooperative.mjpg is not a video (example skipped);
              Rendered/pose_set/ two images, the second truncated (dropped)
  subject_03  Model/frontal1/obj/*.obj is not a mesh and there is no .wrl
              (subject skipped)

A build of the test split therefore keeps 3 examples from 2 subjects.
"""

import os
import shutil

import cv2
import numpy as np
import skimage.data

from mgc_tf.facemodel import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_SIZE = 160
NUM_FRAMES = 7
GRID_ROWS = np.linspace(0, synthetic.NUM_ROWS - 1, 11).round().astype(int)
GRID_COLS = np.linspace(0, synthetic.NUM_COLUMNS - 1, 15).round().astype(int)


def coarse_face_mesh(scale=1.0):
  """Mean face: vertices [165, 3] mm, uv [165, 2], triangles [280, 3]."""
  grid = synthetic.embedded_face_model().mean_shape.reshape(
      synthetic.NUM_ROWS, synthetic.NUM_COLUMNS, 3)
  vertices = grid[GRID_ROWS][:, GRID_COLS].reshape(-1, 3) * scale
  rows, cols = len(GRID_ROWS), len(GRID_COLS)
  u, v = np.meshgrid(np.linspace(0, 1, cols), np.linspace(0, 1, rows))
  uv = np.stack([u.ravel(), v.ravel()], axis=1)
  i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
  corner = (i * cols + j).ravel()
  # Rows go up and columns to +x: counter-clockwise seen from the front (+z).
  triangles = np.concatenate([
      np.stack([corner, corner + 1, corner + cols + 1], axis=1),
      np.stack([corner, corner + cols + 1, corner + cols], axis=1)])
  return np.round(vertices, 3), np.round(uv, 4), triangles


def write_obj(path, vertices, uv, triangles):
  lines = ["# dummy scan: embedded synthetic mean face, mm",
           f"mtllib {os.path.splitext(os.path.basename(path))[0]}.mtl"]
  lines += [f"v {x:.3f} {y:.3f} {z:.3f}" for x, y, z in vertices]
  lines += [f"vt {s:.4f} {t:.4f}" for s, t in uv]
  lines.append("usemtl texture")
  lines += ["f " + " ".join(f"{k + 1}/{k + 1}" for k in face)
            for face in triangles]
  write_text(path, "\n".join(lines) + "\n")


def write_wrl(path, vertices, uv, triangles, translation=None):
  """VRML 2.0 as scanner software writes it; optionally under a Transform
  whose translation is subtracted from the stored points."""
  points = vertices if translation is None else vertices - translation
  point_text = ",\n".join(f"        {x:.3f} {y:.3f} {z:.3f}"
                          for x, y, z in points)
  uv_text = ",\n".join(f"        {s:.4f} {t:.4f}" for s, t in uv)
  index_text = ",\n".join(f"        {a}, {b}, {c}, -1" for a, b, c in triangles)
  shape = f"""Shape {{
  appearance Appearance {{
    material Material {{ diffuseColor 0.8 0.8 0.8 }}
    texture ImageTexture {{ url "texture.bmp" }}
  }}
  geometry IndexedFaceSet {{
    solid FALSE
    coord Coordinate {{
      point [
{point_text}
      ]
    }}
    texCoord TextureCoordinate {{
      point [
{uv_text}
      ]
    }}
    coordIndex [
{index_text}
    ]
    texCoordIndex [
{index_text}
    ]
  }}
}}
"""
  if translation is not None:
    x, y, z = translation
    shape = (f"Transform {{\n  translation {x:.3f} {y:.3f} {z:.3f}\n"
             f"  children [\n{shape}  ]\n}}\n")
  write_text(path, "#VRML V2.0 utf8\n# dummy scan: embedded synthetic mean "
             "face, mm\n" + shape)


def write_text(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def face_frames(shift):
  """NUM_FRAMES RGB crops around the astronaut's face, drifting by `shift`."""
  photo = skimage.data.astronaut()
  frames = []
  for k in range(NUM_FRAMES):
    top, left = 40 + shift[1] * k, 140 + shift[0] * k
    crop = photo[top:top + 200, left:left + 200]
    frames.append(cv2.resize(crop, (FRAME_SIZE, FRAME_SIZE),
                             interpolation=cv2.INTER_AREA))
  return frames


def jpeg_bytes(frame, quality=60):
  ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, quality])
  assert ok
  return data.tobytes()


def write_mjpg(path, frames):
  """A raw Motion-JPEG stream: the frames' JPEGs back to back."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    for frame in frames:
      f.write(jpeg_bytes(frame))


def write_avi(path, frames):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                           (FRAME_SIZE, FRAME_SIZE))
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def write_bytes(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def main():
  for name in os.listdir(HERE):
    if name.startswith("subject_"):
      shutil.rmtree(os.path.join(HERE, name))
  vertices, uv, triangles = coarse_face_mesh()

  subject = os.path.join(HERE, "subject_01")
  write_obj(os.path.join(subject, "Model/frontal1/obj/110920150452.obj"),
            vertices, uv, triangles)
  write_wrl(os.path.join(subject, "Model/frontal1/vrml/110920150452.wrl"),
            vertices, uv, triangles)
  write_mjpg(os.path.join(subject, "Video/Indoor-Cooperative.mjpg"),
             face_frames(shift=(2, 1)))
  frames = face_frames(shift=(-2, 1))
  frames[5] = np.full_like(frames[5], 128)  # No face in this frame.
  write_avi(os.path.join(subject, "Video/PTZ-Indoor.avi"), frames)

  subject = os.path.join(HERE, "subject_02")
  wider, _, _ = coarse_face_mesh(scale=1.05)
  write_wrl(os.path.join(subject, "Model/frontal1/vrml/110616114712.wrl"),
            wider, uv, triangles, translation=np.array([0.0, 12.5, -30.0]))
  write_bytes(os.path.join(subject, "Video/Indoor-Cooperative.mjpg"),
              b"this is not a video\n" * 4)
  rendered = face_frames(shift=(0, 0))
  write_bytes(os.path.join(subject, "Rendered/pose_set/000.jpg"),
              jpeg_bytes(rendered[0]))
  write_bytes(os.path.join(subject, "Rendered/pose_set/001.jpg"),
              jpeg_bytes(np.ascontiguousarray(rendered[1][:, ::-1]))[:200])

  subject = os.path.join(HERE, "subject_03")
  write_text(os.path.join(subject, "Model/frontal1/obj/111019115025.obj"),
             "this file was cut short during the copy\n")
  write_mjpg(os.path.join(subject, "Video/Indoor-Cooperative.mjpg"),
             face_frames(shift=(0, 0))[:1])


if __name__ == "__main__":
  main()
