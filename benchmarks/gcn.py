"""The GCN refiners' sparse products: three ways side by side, and a trunk.

  python benchmarks/gcn.py [--columns=192] [--repeats=9]
      [--face_model=]  (default: the package's default face model)

On the face model's scaled Laplacian L~ [V, V] and a dense x [V, C] (C =
batch x views x channels; 192 is the robust ablation's 4 x 3 x 16), times
forward+backward of one product L~ x, round-robin:
- sparse_dense_matmul: `tf.sparse.sparse_dense_matmul` (what the refiners
  used before), its registered gradient;
- CSR, generic gradient: TensorFlow's CSR product, whose gradient
  multiplies by the adjoint;
- CSR, symmetric gradient: `mgc_tf.models.gcn.SymmetricSparse` (the
  gradient is one more product by L~, which is symmetric).
and one `ChebTrunk` forward+backward (4 residual blocks, K = 3, 16
channels, batch 12) with the product the package uses.
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
from timing import interleaved_median_ms

from mgc_tf.facemodel import graph
from mgc_tf.facemodel import load_face_model
from mgc_tf.models import gcn

_COLUMNS = flags.DEFINE_integer("columns", 192, "Columns of x.")
_REPEATS = flags.DEFINE_integer("repeats", 9, "Timed rounds (median).")
_FACE_MODEL = flags.DEFINE_string("face_model", None,
                                  "Face model path; default: the package's.")
_PRODUCTS = 8  # chained per timed call, so call overhead is small


def main(argv):
  del argv
  model = load_face_model(_FACE_MODEL.value)
  matrix = graph.scaled_laplacian_of(model)
  laplacian = gcn.laplacian_tensor(matrix)
  x = tf.Variable(tf.random.stateless_normal([matrix.size, _COLUMNS.value],
                                             seed=[0, 1]))

  def generic_csr(t):
    csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=laplacian.indices, values=laplacian.values,
        dense_shape=laplacian.dense_shape)
    return tf.raw_ops.SparseMatrixMatMul(a=csr, b=t)

  products = {
      "sparse_dense_matmul": lambda: (
          lambda t: tf.sparse.sparse_dense_matmul(laplacian, t)),
      "CSR, generic gradient": lambda: generic_csr,
      "CSR, symmetric gradient (package)": lambda: gcn.SymmetricSparse(
          laplacian).matmul,
  }

  def chained(make_product):
    @tf.function
    def run():
      with tf.GradientTape() as tape:
        product, t = make_product(), x
        for _ in range(_PRODUCTS):
          t = product(t)
        total = tf.reduce_sum(t * t)
      return tf.convert_to_tensor(tape.gradient(total, x))
    return run

  fns = {name: chained(make) for name, make in products.items()}
  reference = fns["sparse_dense_matmul"]().numpy()
  for name, fn in fns.items():
    difference = np.abs(fn().numpy() - reference).max() / np.abs(
        reference).max()
    assert difference < 1e-4, (name, difference)

  trunk = gcn.ChebTrunk(16, 16, 3, order=3, blocks=4)
  features = tf.random.stateless_normal([12, matrix.size, 16], seed=[2, 3])

  @tf.function
  def trunk_step():
    with tf.GradientTape() as tape:
      total = tf.reduce_sum(tf.square(trunk(features, laplacian)))
    return tape.gradient(total, trunk.trainable_variables)

  fns["ChebTrunk fwd+bwd (package)"] = trunk_step
  times = interleaved_median_ms(fns, _REPEATS.value)
  base = times["sparse_dense_matmul"] / _PRODUCTS
  name = model.name.split(":")[0]
  print(f"\nL~ of {name}: V = {matrix.size}, "
        f"{len(matrix.values)} non-zeros; x [{matrix.size}, "
        f"{_COLUMNS.value}]; median of {_REPEATS.value} rounds\n")
  header = f"{'one product L~ x, forward+backward':<40} {'ms':>8} " \
           f"{'x sparse_dense_matmul':>22}"
  print(header)
  print("-" * len(header))
  for name in products:
    ms = times[name] / _PRODUCTS
    print(f"{name:<40} {ms:>8.2f} {ms / base:>22.3f}")
  print(f"\n{'ChebTrunk fwd+bwd (4 blocks, K=3, 16 ch, B=12)':<40} "
        f"{times['ChebTrunk fwd+bwd (package)']:>8.1f} ms")


if __name__ == "__main__":
  app.run(main)
