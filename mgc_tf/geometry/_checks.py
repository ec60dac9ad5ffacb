"""Private helpers: input conversion and static shape checks for geometry ops.

Every public function in `mgc_tf.geometry` converts its inputs with
`convert_inputs` and checks their static shapes with `check_shape` and
`check_broadcastable` before doing any maths, so that a wrong shape fails at
trace time with a message that names the argument, instead of deep inside a
matmul.
"""

from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def convert_inputs(values: Dict[str, object]) -> Dict[str, tf.Tensor]:
  """Converts named inputs to tensors of one floating dtype.

  The dtype is the one of the inputs that already are floating `tf.Tensor`s
  (or variables); if there are none, it is float32. Python numbers and NumPy
  arrays of any numeric dtype are cast to it.

  Args:
    values: argument name -> value, in argument order.

  Returns:
    argument name -> tensor, all of the same floating dtype.

  Raises:
    ValueError: if tensors of different dtypes, or of a non-floating dtype,
      are given.
  """
  tensor_dtypes = {}
  for key, value in values.items():
    if isinstance(value, (tf.Tensor, tf.Variable)):
      tensor_dtypes[key] = value.dtype.base_dtype
  dtype = tf.float32
  if tensor_dtypes:
    distinct = set(tensor_dtypes.values())
    if len(distinct) > 1:
      found = ", ".join(f"{k}={v.name}" for k, v in tensor_dtypes.items())
      raise ValueError(
          f"All tensor inputs must have the same floating dtype. Received: "
          f"{found}.")
    dtype = distinct.pop()
    if dtype not in _FLOAT_DTYPES:
      found = ", ".join(f"{k}={v.name}" for k, v in tensor_dtypes.items())
      raise ValueError(
          f"Tensor inputs must have a floating dtype. Received: {found}.")
  return {
      key: tf.convert_to_tensor(value, dtype=dtype, name=key)
      for key, value in values.items()
  }


def check_shape(tensor: tf.Tensor,
                name: str,
                last_dims: Sequence[Optional[int]],
                pattern: str, min_rank: Optional[int] = None) -> None:
  """Checks the static trailing dimensions of a tensor.

  Unknown static dimensions (inside a `tf.function` traced with `None`
  dimensions) pass; only dimensions known to be wrong raise.

  Args:
    tensor: the tensor to check.
    name: its argument name, for the error message.
    last_dims: the expected trailing dimensions; `None` matches any size.
    pattern: the expected shape in words, e.g. "[A1, ..., An, V, 3]".
    min_rank: the least rank; defaults to `len(last_dims)`.

  Raises:
    ValueError: if the rank is too small or a trailing dimension differs.
  """
  shape = tensor.shape
  if shape.rank is None:
    return
  min_rank = len(last_dims) if min_rank is None else min_rank
  message = (f"`{name}` must have shape {pattern}. "
             f"Received: {name}.shape={tuple(shape.as_list())}")
  if shape.rank < min_rank:
    raise ValueError(message)
  for offset, expected in enumerate(reversed(last_dims), start=1):
    if expected is None:
      continue
    actual = shape[-offset]
    if actual is not None and actual != expected:
      raise ValueError(message)


def batch_shape(tensor: tf.Tensor, num_trailing: int) -> tf.TensorShape:
  """Static shape of `tensor` without its last `num_trailing` dimensions."""
  if tensor.shape.rank is None:
    return tf.TensorShape(None)
  return tensor.shape[:tensor.shape.rank - num_trailing]


def check_broadcastable(shapes: Dict[str, tf.TensorShape]) -> tf.TensorShape:
  """Checks that named batch shapes broadcast together (NumPy rules).

  Args:
    shapes: argument name -> its batch shape (the leading dimensions).

  Returns:
    The broadcast static shape (possibly partially unknown).

  Raises:
    ValueError: if the shapes are known not to broadcast.
  """
  result = tf.TensorShape([])
  for shape in shapes.values():
    try:
      result = tf.broadcast_static_shape(result, shape)
    except ValueError:
      found = ", ".join(
          f"{k}={tuple(v.as_list()) if v.rank is not None else None}"
          for k, v in shapes.items())
      raise ValueError(
          f"Batch dimensions [A1, ..., An] must broadcast together. "
          f"Received batch shapes: {found}") from None
  return result


def split_last(tensor: tf.Tensor, num: int) -> Tuple[tf.Tensor, ...]:
  """Unstacks the last axis (of static size `num`) into `num` tensors."""
  return tuple(tf.unstack(tensor, num=num, axis=-1))
