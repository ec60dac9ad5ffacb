r"""REST client for an mgc_tf export served by TF Serving (port 8501).

Needs only the Python standard library and NumPy (no TensorFlow):

  python launch/serving/rest_client.py crop1.jpg crop2.png \
      [--url=http://localhost:8501] [--model_name=mgc] [--version=N] \
      [--output=predictions.npz]

sends the files' bytes to the `serving_default` signature
(POST /v1/models/<name>[/versions/<N>]:predict with
{"signature_name": "serving_default", "instances": [{"b64": ...}, ...]}) and
prints the shape of every output (`coefficients` [N, K], `pose` [N, 6],
`landmarks_2d` [N, 68, 2] pixels of each crop, `landmarks_3d` [N, 68, 3] mm).
`--output` saves them as .npz. The images must be square aligned crops
(JPEG or PNG, normally 224 x 224; see docs/serving.md).

As a library:

  body = build_predict_request(image_bytes=[open("crop.jpg", "rb").read()])
  outputs = predict("http://localhost:8501", "mgc", body)  # {name: ndarray}
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from typing import Dict, Optional, Sequence

import numpy as np

SERVING_DEFAULT = "serving_default"


def build_predict_request(image_bytes: Optional[Sequence[bytes]] = None,
                          images: Optional[np.ndarray] = None,
                          signature_name: str = SERVING_DEFAULT) -> str:
  """The JSON body of a :predict call, in TF Serving's row ("instances") form.

  Exactly one of:
    image_bytes: encoded JPEG/PNG files, one per instance, sent as
      {"b64": ...} (for `serving_default`).
    images: float [N, H, H, 3] RGB in [0, 1] (for `predict_images` /
      `predict_vertices`), sent as nested lists.

  Returns:
    The request body (a JSON string).
  """
  if (image_bytes is None) == (images is None):
    raise ValueError("Pass exactly one of image_bytes (encoded files) or "
                     "images (a float [N, H, H, 3] array).")
  if image_bytes is not None:
    if isinstance(image_bytes, (bytes, bytearray)):
      raise ValueError("image_bytes must be a sequence of encoded files, "
                       "not one bytes object: pass [data].")
    instances = [{"b64": base64.b64encode(bytes(data)).decode("ascii")}
                 for data in image_bytes]
  else:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError("images must be [N, H, H, 3] RGB; got shape "
                       f"{images.shape}.")
    instances = images.tolist()
  return json.dumps({"signature_name": signature_name,
                     "instances": instances})


def parse_predict_response(body) -> Dict[str, np.ndarray]:
  """A :predict response (str, bytes or parsed dict) -> {output: array}.

  Handles the row form ({"predictions": [{name: value}, ...]}) that TF
  Serving answers to "instances", and the columnar form ({"outputs": ...}).
  Each array has the batch as its first axis.
  """
  if isinstance(body, (bytes, bytearray)):
    body = body.decode("utf-8")
  if isinstance(body, str):
    body = json.loads(body)
  if "error" in body:
    raise RuntimeError(f"TF Serving returned an error: {body['error']}")
  if "predictions" in body:
    rows = body["predictions"]
    if rows and isinstance(rows[0], dict):
      return {name: np.asarray([row[name] for row in rows], np.float32)
              for name in rows[0]}
    return {"output": np.asarray(rows, np.float32)}
  if "outputs" in body:
    outputs = body["outputs"]
    if isinstance(outputs, dict):
      return {name: np.asarray(value, np.float32)
              for name, value in outputs.items()}
    return {"output": np.asarray(outputs, np.float32)}
  raise ValueError("Not a TF Serving predict response (no 'predictions' or "
                   f"'outputs'): keys {sorted(body)}")


def predict_url(base_url: str, model_name: str,
                version: Optional[int] = None) -> str:
  """http://host:8501/v1/models/<name>[/versions/<N>]:predict"""
  url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
  if version is not None:
    url += f"/versions/{int(version)}"
  return url + ":predict"


def predict(base_url: str, model_name: str, body: str,
            version: Optional[int] = None,
            timeout: float = 30.0) -> Dict[str, np.ndarray]:
  """POSTs `body` to the model's :predict endpoint; returns the outputs.

  Raises:
    RuntimeError: the server answered with an error (bad input included:
      its message names the input, e.g. `image_bytes`).
  """
  request = urllib.request.Request(
      predict_url(base_url, model_name, version), data=body.encode("utf-8"),
      headers={"Content-Type": "application/json"}, method="POST")
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      return parse_predict_response(response.read())
  except urllib.error.HTTPError as error:
    detail = error.read().decode("utf-8", "replace")
    raise RuntimeError(f"HTTP {error.code} from {request.full_url}: "
                       f"{detail}") from error


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("images", nargs="+", help="JPEG/PNG aligned crops.")
  parser.add_argument("--url", default="http://localhost:8501")
  parser.add_argument("--model_name", default="mgc")
  parser.add_argument("--version", type=int, default=None)
  parser.add_argument("--output", default=None, help="Save outputs (.npz).")
  args = parser.parse_args(argv)
  data = []
  for path in args.images:
    with open(path, "rb") as f:
      data.append(f.read())
  try:
    outputs = predict(args.url, args.model_name,
                      build_predict_request(image_bytes=data),
                      version=args.version)
  except (RuntimeError, urllib.error.URLError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  for name, value in sorted(outputs.items()):
    print(f"{name}: shape {list(value.shape)}")
  if args.output:
    np.savez(args.output, **outputs)
    print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
