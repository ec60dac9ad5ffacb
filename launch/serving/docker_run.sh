#!/usr/bin/env bash
# Serves an export with the stock TensorFlow Serving image.
#
#   launch/serving/docker_run.sh EXPORT_DIR [MODEL_NAME]
#
# EXPORT_DIR is the --export_dir given to `python -m mgc_tf.export`; it must
# hold MODEL_NAME/<version>/saved_model.pb. REST on port 8501, gRPC on 8500:
#   curl http://localhost:8501/v1/models/mgc            # version status
#   curl http://localhost:8501/v1/models/mgc/metadata   # signatures
#   python launch/serving/rest_client.py crop.jpg
#
# Environment:
#   TF_SERVING_IMAGE  image (default tensorflow/serving:latest; pin a tag in
#                     production, e.g. the one matching your TensorFlow)
#   REST_PORT, GRPC_PORT  host ports (default 8501, 8500)
#   CONTAINER_NAME    (default mgc-serving)
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 EXPORT_DIR [MODEL_NAME]" >&2
  exit 2
fi
if [[ ! -d "$1" ]]; then
  echo "error: EXPORT_DIR '$1' is not a directory (write it with" \
       "python -m mgc_tf.export --model_dir=RUN --export_dir=$1)" >&2
  exit 2
fi
EXPORT_DIR="$(cd "$1" && pwd)"
MODEL_NAME="${2:-mgc}"
if [[ ! -d "${EXPORT_DIR}/${MODEL_NAME}" ]]; then
  echo "error: ${EXPORT_DIR}/${MODEL_NAME} does not exist: no model named" \
       "'${MODEL_NAME}' was exported there (see --model_name)" >&2
  exit 2
fi
IMAGE="${TF_SERVING_IMAGE:-tensorflow/serving:latest}"
REST_PORT="${REST_PORT:-8501}"
GRPC_PORT="${GRPC_PORT:-8500}"
CONTAINER_NAME="${CONTAINER_NAME:-mgc-serving}"

# The image's entrypoint runs tensorflow_model_server with
# --model_name=${MODEL_NAME} --model_base_path=/models/${MODEL_NAME}.
exec docker run --rm --name "${CONTAINER_NAME}" \
  -p "${GRPC_PORT}:8500" -p "${REST_PORT}:8501" \
  --mount "type=bind,source=${EXPORT_DIR}/${MODEL_NAME},target=/models/${MODEL_NAME},readonly" \
  -e MODEL_NAME="${MODEL_NAME}" \
  "${IMAGE}"
