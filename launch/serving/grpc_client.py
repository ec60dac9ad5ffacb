r"""gRPC client for an mgc_tf export served by TF Serving (port 8500).

Needs tensorflow-serving-api (`pip install mgc-tf[serving]`, or
`pip install tensorflow-serving-api`), which brings grpcio and TensorFlow:

  python launch/serving/grpc_client.py crop1.jpg crop2.png \
      [--target=localhost:8500] [--model_name=mgc] [--version=N] \
      [--signature=serving_default] [--output=predictions.npz]

sends a PredictRequest with the files' bytes as the `image_bytes` string
tensor [N] and prints the shape of every output (`coefficients` [N, K],
`pose` [N, 6], `landmarks_2d` [N, 68, 2] pixels, `landmarks_3d`
[N, 68, 3] mm; see docs/serving.md).

As a library:

  request = build_predict_request([open("crop.jpg", "rb").read()])
  outputs = predict("localhost:8500", request)   # {name: ndarray}
"""

import argparse
import sys
from typing import Dict, Optional, Sequence

import numpy as np

SERVING_DEFAULT = "serving_default"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"


def _serving_apis():
  """(tf, grpc, predict_pb2, prediction_service_pb2_grpc), or a clear error."""
  try:
    # pylint: disable=g-import-not-at-top
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc
  except ImportError as error:
    raise ImportError(
        "The gRPC client needs tensorflow-serving-api (and grpcio): "
        "pip install mgc-tf[serving]   (or: pip install "
        f"tensorflow-serving-api). Import failed: {error}") from error
  return tf, grpc, predict_pb2, prediction_service_pb2_grpc


def build_predict_request(image_bytes: Optional[Sequence[bytes]] = None,
                          model_name: str = "mgc",
                          signature_name: str = SERVING_DEFAULT,
                          version: Optional[int] = None,
                          images: Optional[np.ndarray] = None):
  """A tensorflow.serving.PredictRequest for the export's signatures.

  Exactly one of:
    image_bytes: encoded JPEG/PNG square crops -> input `image_bytes`
      (string [N]), for `serving_default`.
    images: float [N, H, H, 3] RGB in [0, 1] -> input `images`, for
      `predict_images` / `predict_vertices`.
  """
  tf, _, predict_pb2, _ = _serving_apis()
  if (image_bytes is None) == (images is None):
    raise ValueError("Pass exactly one of image_bytes (encoded files) or "
                     "images (a float [N, H, H, 3] array).")
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = int(version)
  if image_bytes is not None:
    if isinstance(image_bytes, (bytes, bytearray)):
      raise ValueError("image_bytes must be a sequence of encoded files, "
                       "not one bytes object: pass [data].")
    data = [bytes(item) for item in image_bytes]
    request.inputs[BYTES_INPUT].CopyFrom(
        tf.make_tensor_proto(data, dtype=tf.string, shape=[len(data)]))
  else:
    request.inputs[IMAGES_INPUT].CopyFrom(
        tf.make_tensor_proto(np.asarray(images, np.float32)))
  return request


def parse_predict_response(response) -> Dict[str, np.ndarray]:
  """PredictResponse -> {output name: ndarray}."""
  tf, _, _, _ = _serving_apis()
  return {name: tf.make_ndarray(proto)
          for name, proto in response.outputs.items()}


def predict(target: str, request,
            timeout: float = 30.0) -> Dict[str, np.ndarray]:
  """Sends `request` to TF Serving at `target` (host:8500)."""
  _, grpc, _, prediction_service_pb2_grpc = _serving_apis()
  # Room for [N, V, 3] vertex outputs of real face models.
  options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
  with grpc.insecure_channel(target, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return parse_predict_response(stub.Predict(request, timeout=timeout))


def decode_images(image_bytes: Sequence[bytes]) -> np.ndarray:
  """Encoded crops of one size -> float32 [N, H, H, 3] RGB in [0, 1]."""
  tf, _, _, _ = _serving_apis()
  return np.stack([
      tf.image.convert_image_dtype(
          tf.io.decode_image(data, channels=3, expand_animations=False),
          tf.float32).numpy() for data in image_bytes])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("images", nargs="+", help="JPEG/PNG aligned crops.")
  parser.add_argument("--target", default="localhost:8500")
  parser.add_argument("--model_name", default="mgc")
  parser.add_argument("--version", type=int, default=None)
  parser.add_argument(
      "--signature", default=SERVING_DEFAULT,
      choices=[SERVING_DEFAULT, "predict_images", "predict_vertices"],
      help="The float signatures get the files decoded here (one size).")
  parser.add_argument("--output", default=None, help="Save outputs (.npz).")
  args = parser.parse_args(argv)
  data = []
  for path in args.images:
    with open(path, "rb") as f:
      data.append(f.read())
  try:
    if args.signature == SERVING_DEFAULT:
      request = build_predict_request(data, model_name=args.model_name,
                                      version=args.version)
    else:  # predict_images / predict_vertices take decoded float crops
      request = build_predict_request(
          images=decode_images(data), model_name=args.model_name,
          signature_name=args.signature, version=args.version)
    outputs = predict(args.target, request)
  except ImportError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  except Exception as error:  # pylint: disable=broad-except
    # grpc.RpcError carries the server's message (e.g. a bad image_bytes).
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
