"""Writes video_folder's dummy data (run from the repository root):

    python3 tfds_builders/video_folder/dummy_data/make_dummy_data.py

Videos are made of 192 x 192 crops of skimage's astronaut photograph, shifted
and rotated a little per frame so the head "moves":

  alice/talk.mp4 + talk_landmarks.txt   16 frames (mp4v, 25 fps); landmarks
                                        from dlib on each frame, frame 3
                                        marked "nan nan" -> 15 frames kept
                                        (config stride5: frames 0, 5, 10, 15)
  bob.avi                               5 frames (MJPG, 10 fps), no landmark
                                        file: detected at build time
                                        (config stride5: 1 frame, skipped)
  carol/short.mp4 + short.npy           2 frames -> fewer than min_frames = 3,
                                        skipped
  dave/broken.mp4                       random bytes -> unreadable, skipped

Needs dlib (`pip install "mgc-tf[preprocess]"`) and scikit-image.
"""

import os

import cv2
import numpy as np
import skimage.data

from mgc_tf.faces2d.preprocessing import default_landmarker

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_SIZE = 192
# Centre of the astronaut's face in skimage.data.astronaut() (512 x 512).
FACE_CENTRE = (220.0, 125.0)
NAN_FRAME = 3


def moving_face_frames(num_frames: int, phase: float) -> list:
  """num_frames RGB [192, 192, 3] crops with a small rotation and drift."""
  photo = skimage.data.astronaut()
  frames = []
  for i in range(num_frames):
    angle = 4.0 * np.sin(0.9 * i + phase)  # degrees
    transform = cv2.getRotationMatrix2D(FACE_CENTRE, angle, 1.0)
    # Put the face centre at the crop centre, drifting a few pixels.
    transform[:, 2] += (FRAME_SIZE / 2 - FACE_CENTRE[0] + 2.0 * i,
                        FRAME_SIZE / 2 - FACE_CENTRE[1] + 1.5 * np.cos(i))
    frames.append(cv2.warpAffine(photo, transform, (FRAME_SIZE, FRAME_SIZE),
                                 flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE))
  return frames


def write_video(path: str, frames: list, fps: float, codec: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps,
                           (FRAME_SIZE, FRAME_SIZE))
  if not writer.isOpened():
    raise RuntimeError(f"OpenCV cannot write {codec} video {path}")
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def decoded_frames(path: str) -> list:
  capture = cv2.VideoCapture(path)
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  return frames


def landmark_track(video_path: str) -> np.ndarray:
  """[T, 68, 2] dlib landmarks of the decoded frames of a video."""
  landmarker = default_landmarker()
  track = []
  for index, frame in enumerate(decoded_frames(video_path)):
    detections = landmarker.detect(frame)
    if not detections:
      raise RuntimeError(f"dlib found no face in frame {index} of {video_path}")
    track.append(detections[0].landmarks)
  return np.stack(track).astype(np.float32)


def main() -> None:
  alice = os.path.join(HERE, "alice", "talk.mp4")
  write_video(alice, moving_face_frames(16, phase=0.0), 25.0, "mp4v")
  track = landmark_track(alice)
  track[NAN_FRAME] = np.nan
  with open(os.path.join(HERE, "alice", "talk_landmarks.txt"), "w") as f:
    f.write("# talk.mp4: 68 'x y' lines per frame, frame 0 first; "
            f"frame {NAN_FRAME} has no face (nan)\n")
    for x, y in track.reshape(-1, 2):
      f.write(f"{x:.1f} {y:.1f}\n")

  write_video(os.path.join(HERE, "bob.avi"),
              moving_face_frames(5, phase=1.0), 10.0, "MJPG")

  carol = os.path.join(HERE, "carol", "short.mp4")
  write_video(carol, moving_face_frames(2, phase=2.0), 25.0, "mp4v")
  np.save(os.path.join(HERE, "carol", "short.npy"), landmark_track(carol))

  os.makedirs(os.path.join(HERE, "dave"), exist_ok=True)
  with open(os.path.join(HERE, "dave", "broken.mp4"), "wb") as f:
    f.write(np.random.default_rng(0).bytes(2000))


if __name__ == "__main__":
  main()
