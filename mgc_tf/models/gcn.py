"""Chebyshev spectral graph convolutions and the robust method's GCN refiners.

A Chebyshev convolution of order K (Defferrard et al. 2016; Mohaghegh et
al. eqs. 3-4) maps per-vertex features x [B, V, F_in] to

  y = sum_{k=0}^{K-1} T_k(L~) x Theta_k + b,      Theta_k: [F_in, F_out]

with T_0(L~) x = x, T_1(L~) x = L~ x, T_k(L~) x = 2 L~ T_{k-1}(L~) x -
T_{k-2}(L~) x, and L~ the mesh's scaled Laplacian
(`mgc_tf.facemodel.graph.scaled_laplacian`), a [V, V] `tf.SparseTensor`
passed at call time: the networks own no mesh, so they are built from plain
keyword arguments (`mgc_tf.models.registry`) and work on any mesh.

Registered networks (both called as `net(inputs, laplacian)`):

  robust_mesh_refiner   coarse per-vertex colours [B, V, 3] in [0, 1] ->
                        refined colours [B, V, 3] (coarse + a learned
                        residual; not clipped)
  robust_faid_refiner   face features [B, D] (identity and attribute
                        features) -> per-vertex colours [B, V, 3] in (0, 1)

Both are a Chebyshev trunk: an input convolution to `channels`, `blocks`
residual blocks (conv -> ReLU -> conv, plus the input, -> ReLU), an output
convolution to 3 channels. The feature-wise refiner's per-vertex input is
a learned per-vertex code [V, C] plus the features mapped by a dense layer
to C and broadcast over the vertices.
"""

from typing import List

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf

from mgc_tf.facemodel import graph
from mgc_tf.models import registry


def laplacian_tensor(matrix) -> tf.SparseTensor:
  """A `graph.SparseMatrix` (or anything with indices, values, size) ->
  [V, V] float32 `tf.SparseTensor`.

  Raises:
    ValueError: the matrix is not symmetric (the convolutions' backward
      pass multiplies by L~ itself, not by its transpose).
  """
  indices = np.asarray(matrix.indices, np.int64)
  values = np.asarray(matrix.values, np.float32)
  dense = scipy.sparse.coo_matrix((values, (indices[:, 0], indices[:, 1])),
                                  shape=(matrix.size, matrix.size)).tocsr()
  asymmetry = abs(dense - dense.T).max() if dense.nnz else 0.0
  if asymmetry > 1e-6 * max(1.0, abs(dense).max()):
    raise ValueError(
        "The graph Laplacian is not symmetric (largest |L - L^T| "
        f"{asymmetry:.3g}); build it with mgc_tf.facemodel.graph."
        "scaled_laplacian, which is.")
  return tf.sparse.reorder(tf.SparseTensor(
      indices=indices, values=tf.constant(values, tf.float32),
      dense_shape=[matrix.size, matrix.size]))


class SymmetricSparse:
  """A symmetric sparse [V, V] matrix (L~) ready for repeated products.

  Held in CSR form: TensorFlow's CSR product is about 4.5x faster on CPU
  than `tf.sparse.sparse_dense_matmul` on the ICT mesh (12.5k vertices,
  87k non-zeros, 192 columns; fwd+bwd 4.6 against 21 ms per product), and
  as L~ = L~^T the gradient is one more product by L~ (2.9 ms), where
  the generic gradient multiplies by the adjoint. Built inside the
  network's call, once per call: a CSR handle made eagerly loses its
  shape information when a `tf.function` captures it.

  Args:
    laplacian: [V, V] float32 `tf.SparseTensor` with sorted indices
      (`laplacian_tensor`), symmetric.
  """

  def __init__(self, laplacian: tf.SparseTensor):
    self._csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
        indices=laplacian.indices,
        values=tf.cast(laplacian.values, tf.float32),
        dense_shape=laplacian.dense_shape)

  def matmul(self, x: tf.Tensor) -> tf.Tensor:
    """[V, N] -> L~ x [V, N]; differentiable in x."""

    # The CSR handle is an argument, not a capture: a SavedModel keeps
    # custom gradients, and cannot save one that captures a graph tensor.
    @tf.custom_gradient
    def product(x, csr):
      def gradient(dy):
        return tf.raw_ops.SparseMatrixMatMul(a=csr, b=dy), None
      return tf.raw_ops.SparseMatrixMatMul(a=csr, b=x), gradient

    return product(tf.convert_to_tensor(x, tf.float32), self._csr)


def as_symmetric_sparse(laplacian) -> SymmetricSparse:
  """A `tf.SparseTensor` -> `SymmetricSparse`; one already is, unchanged."""
  if isinstance(laplacian, SymmetricSparse):
    return laplacian
  return SymmetricSparse(laplacian)


def chebyshev_terms(laplacian, x: tf.Tensor,
                    order: int) -> List[tf.Tensor]:
  """[T_0(L~) x, ..., T_{K-1}(L~) x] by the three-term recursion.

  Args:
    laplacian: [V, V] float32 symmetric L~, a `tf.SparseTensor` or a
      `SymmetricSparse`.
    x: [B, V, F] float32 per-vertex features.
    order: K >= 1.

  Returns:
    K tensors [B, V, F].
  """
  if order < 1:
    raise ValueError(f"order must be >= 1. Received: order={order}")
  b, v, f = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
  # [B, V, F] -> [V, B*F] so one sparse product serves the whole batch.
  flat = tf.reshape(tf.transpose(x, [1, 0, 2]), [v, b * f])
  apply = as_symmetric_sparse(laplacian).matmul if order > 1 else None
  terms = [flat]
  if order > 1:
    terms.append(apply(flat))
  for _ in range(2, order):
    terms.append(2.0 * apply(terms[-1]) - terms[-2])
  return [tf.transpose(tf.reshape(t, [v, b, f]), [1, 0, 2]) for t in terms]


class ChebConv(keras.layers.Layer):
  """One Chebyshev graph convolution: [B, V, F_in] -> [B, V, F_out].

  Args:
    in_channels: F_in.
    out_channels: F_out.
    order: K, the number of Chebyshev terms (K - 1 is the polynomial degree
      and the filter's reach in mesh edges).
  """

  def __init__(self, in_channels: int, out_channels: int, order: int,
               **kwargs):
    if min(in_channels, out_channels, order) < 1:
      raise ValueError(
          "in_channels, out_channels and order must be >= 1. Received: "
          f"in_channels={in_channels}, out_channels={out_channels}, "
          f"order={order}")
    super().__init__(**kwargs)
    self.in_channels = in_channels
    self.out_channels = out_channels
    self.order = order
    # Created here, not in build: the trainer builds the optimizer before
    # the first call.
    self.kernel = self.add_weight(
        shape=(order, in_channels, out_channels), name="kernel",
        initializer=keras.initializers.VarianceScaling(
            scale=1.0 / order, mode="fan_in", distribution="truncated_normal"))
    self.bias = self.add_weight(shape=(out_channels,), name="bias",
                                initializer="zeros")

  def call(self, x, laplacian):
    x = tf.convert_to_tensor(x, tf.float32)
    terms = chebyshev_terms(laplacian, x, self.order)
    y = self.bias
    for k, term in enumerate(terms):
      y = y + tf.einsum("bvf,fg->bvg", term, self.kernel[k])
    return y

  def get_config(self):
    return {**super().get_config(), "in_channels": self.in_channels,
            "out_channels": self.out_channels, "order": self.order}


class ChebTrunk(keras.layers.Layer):
  """Input conv -> `blocks` residual blocks -> output conv (see module doc).

  Args:
    in_channels: per-vertex input features.
    channels: width of the residual blocks.
    out_channels: per-vertex outputs.
    order: K of every convolution.
    blocks: number of residual blocks (the paper: 4).
  """

  def __init__(self, in_channels: int, channels: int, out_channels: int,
               order: int, blocks: int, **kwargs):
    if blocks < 0:
      raise ValueError(f"blocks must be >= 0. Received: blocks={blocks}")
    super().__init__(**kwargs)
    self.input_conv = ChebConv(in_channels, channels, order, name="conv_in")
    # One attribute per convolution: TensorFlow checkpoints follow
    # attributes, not Keras' tracked lists (a list of pairs was never
    # saved, so a restored trunk lost its residual blocks).
    self.num_blocks = blocks
    for i in range(blocks):
      for j in (1, 2):
        setattr(self, f"block{i}_conv{j}",
                ChebConv(channels, channels, order, name=f"block{i}_conv{j}"))
    self.output_conv = ChebConv(channels, out_channels, order,
                                name="conv_out")

  def block_convs(self):
    """[(first, second)] convolutions of each residual block."""
    return [(getattr(self, f"block{i}_conv1"), getattr(self, f"block{i}_conv2"))
            for i in range(self.num_blocks)]

  def call(self, x, laplacian):
    # One CSR conversion serves all the trunk's convolutions.
    laplacian = as_symmetric_sparse(laplacian)
    # Keyword: Keras takes only tensors as positional arguments.
    h = tf.nn.relu(self.input_conv(x, laplacian=laplacian))
    for first, second in self.block_convs():
      h = tf.nn.relu(h + second(tf.nn.relu(first(h, laplacian=laplacian)),
                                laplacian=laplacian))
    return self.output_conv(h, laplacian=laplacian)


class _MeshNetwork(keras.Model):
  """A network called as `net(inputs, laplacian)`.

  Keras gives every Model a one-input serving function that
  `tf.saved_model.save` traces when the model is part of an export (the
  robust method's refined-texture output); with two inputs that trace
  fails, so these networks offer none (the export's own signatures call
  them with the Laplacian).
  """

  @property
  def _default_save_signature(self):
    return None


class MeshRefiner(_MeshNetwork):
  """Coarse per-vertex colours [B, V, 3] -> refined [B, V, 3] (residual).

  Args:
    channels, order, blocks: of the `ChebTrunk`.
  """

  def __init__(self, channels: int = 32, order: int = 6, blocks: int = 4,
               **kwargs):
    super().__init__(**kwargs)
    self.channels, self.order, self.blocks = channels, order, blocks
    self.trunk = ChebTrunk(3, channels, 3, order, blocks, name="trunk")

  def call(self, colors, laplacian):
    colors = tf.convert_to_tensor(colors, tf.float32)
    return colors + self.trunk(colors, laplacian)

  def get_config(self):
    return {"channels": self.channels, "order": self.order,
            "blocks": self.blocks, "name": self.name}


class FeatureRefiner(_MeshNetwork):
  """FAID decoder: features [B, D] -> per-vertex colours [B, V, 3] in (0, 1).

  Args:
    num_vertices: V (the per-vertex code is [V, code_channels]).
    feature_dim: D.
    channels, order, blocks: of the `ChebTrunk`.
    code_channels: width of the per-vertex input (learned code + features).
  """

  def __init__(self, num_vertices: int, feature_dim: int, channels: int = 32,
               order: int = 6, blocks: int = 4, code_channels: int = 8,
               **kwargs):
    if min(num_vertices, feature_dim, code_channels) < 1:
      raise ValueError(
          "num_vertices, feature_dim and code_channels must be >= 1. "
          f"Received: num_vertices={num_vertices}, feature_dim={feature_dim}, "
          f"code_channels={code_channels}")
    super().__init__(**kwargs)
    self.num_vertices, self.feature_dim = num_vertices, feature_dim
    self.channels, self.order, self.blocks = channels, order, blocks
    self.code_channels = code_channels
    self.vertex_code = self.add_weight(
        shape=(num_vertices, code_channels), name="vertex_code",
        initializer=keras.initializers.RandomNormal(stddev=0.1))
    self.project = keras.layers.Dense(code_channels, name="project")
    self.project.build((None, feature_dim))
    self.trunk = ChebTrunk(code_channels, channels, 3, order, blocks,
                           name="trunk")

  def call(self, features, laplacian):
    features = tf.convert_to_tensor(features, tf.float32)
    projected = self.project(features)[:, None, :]  # [B, 1, C]
    x = self.vertex_code[None] + projected  # [B, V, C]
    return tf.sigmoid(self.trunk(x, laplacian))

  def get_config(self):
    return {"num_vertices": self.num_vertices,
            "feature_dim": self.feature_dim, "channels": self.channels,
            "order": self.order, "blocks": self.blocks,
            "code_channels": self.code_channels, "name": self.name}


@registry.register("robust_mesh_refiner")
def build_mesh_refiner(channels: int = 32, order: int = 6,
                       blocks: int = 4) -> keras.Model:
  """The mesh-wise refiner (see the module docstring)."""
  return MeshRefiner(channels=channels, order=order, blocks=blocks,
                     name="robust_mesh_refiner")


@registry.register("robust_faid_refiner")
def build_faid_refiner(num_vertices: int, feature_dim: int,
                       channels: int = 32, order: int = 6, blocks: int = 4,
                       code_channels: int = 8) -> keras.Model:
  """The feature-wise (FAID) refiner (see the module docstring)."""
  return FeatureRefiner(num_vertices, feature_dim, channels=channels,
                        order=order, blocks=blocks,
                        code_channels=code_channels,
                        name="robust_faid_refiner")


# ------------------------------------------- the refined texture at inference

#: The extra output name of the refined texture (exports, evaluation).
REFINED_ALBEDO_OUTPUT = "albedo_refined"

def face_features(images, embeddings) -> tf.Tensor:
  """[M, S, S, 3] -> [M, D] the FAID refiner's input: the embeddings'
  outputs (identity, then attribute features) side by side, as constants
  (the networks are frozen and the input is data).

  Args:
    images: crops in [0, 1].
    embeddings: `FaceEmbedding`s (or any images -> [M, D_i] callables).
  """
  parts = [tf.cast(embedding(images), tf.float32) for embedding in embeddings]
  return tf.stop_gradient(tf.concat(parts, axis=-1))


def refined_albedo(coarse, laplacian, mesh_refiner=None, faid_refiner=None,
                   features=None, training: bool = False) -> tf.Tensor:
  """The robust method's final texture: the average of the enabled refiners.

  Args:
    coarse: [M, V, 3] coarse albedo in [0, 1] (the mesh-wise refiner's
      input).
    laplacian: the mesh's scaled Laplacian, [V, V] `tf.SparseTensor`.
    mesh_refiner, faid_refiner: the networks, or None when off.
    features: [M, D] `face_features` (the FAID refiner's input).
    training: the networks' mode.

  Returns:
    [M, V, 3] in [0, 1]; the coarse albedo when both refiners are off.
  """
  outputs = []
  if mesh_refiner is not None:
    outputs.append(mesh_refiner(coarse, laplacian, training=training))
  if faid_refiner is not None:
    outputs.append(faid_refiner(features, laplacian, training=training))
  if not outputs:
    return coarse
  return tf.clip_by_value(tf.add_n(outputs) / float(len(outputs)), 0.0, 1.0)


class RefinedAlbedo(keras.Model):
  """Crops [M, S, S, 3] -> the refined per-vertex albedo [M, V, 3] in [0, 1].

  The robust method's texture at inference (`refined_albedo` of the
  reconstructor's coarse albedo); an extra output of exported models.

  Args:
    reconstructor: images -> [M, K] coefficients.
    decoder: the face model's `FaceDecoder`.
    mesh_refiner, faid_refiner: the trained refiners, or None.
    embeddings: the FAID refiner's feature networks (`face_features`).
  """

  def __init__(self, reconstructor, decoder, mesh_refiner=None,
               faid_refiner=None, embeddings=(), **kwargs):
    super().__init__(**kwargs)
    self.reconstructor = reconstructor
    self.decoder = decoder
    self.mesh_refiner, self.faid_refiner = mesh_refiner, faid_refiner
    self.embeddings = tuple(embeddings)
    # The frozen feature networks' variables, tracked (a tf.Module's list,
    # which TensorFlow follows) so that an export that calls them holds them.
    self.embedding_variables = tf.Module(name="embedding_variables")
    self.embedding_variables.held = [v for e in self.embeddings
                                     for v in e.variables]
    self.laplacian = laplacian_tensor(
        graph.scaled_laplacian_of(decoder.face_model))

  #: `registry.call_output` passes the coefficients already predicted.
  takes_coefficients = True

  def call(self, images, training=False, coefficients=None):
    """images [M, S, S, 3] -> [M, V, 3]; `coefficients` [M, K], when the
    caller has them, spare the reconstructor's second run."""
    images = tf.cast(images, tf.float32)
    if coefficients is None:
      coefficients = self.reconstructor(images, training=training)
    coefficients = tf.cast(coefficients, tf.float32)
    coarse = self.decoder.albedo(
        self.decoder.layout.split(coefficients)["albedo"])
    features = (face_features(images, self.embeddings)
                if self.faid_refiner is not None else None)
    return refined_albedo(coarse, self.laplacian, self.mesh_refiner,
                          self.faid_refiner, features, training=training)


@registry.register("robust_refined_albedo")
def build_refined_albedo(identity_model: str = "dlib",
                         attribute_model: str = "dlib", *, networks,
                         decoder, reconstructor: str = "reconstructor",
                         mesh_refiner: str = "robust_mesh_refiner",
                         faid_refiner: str = "robust_faid_refiner"
                         ) -> keras.Model:
  """`RefinedAlbedo` over a run's restored networks (model.json's output
  "albedo_refined"); a refiner missing from `networks` is off. The feature
  networks are rebuilt from the run's `--identity_model` and
  `--attribute_model` values ("dlib", "none" or a path)."""
  # pylint: disable=g-import-not-at-top
  from mgc_tf.models import face_embedding as embedding_lib
  embeddings = []
  if faid_refiner in networks:
    for spec, factory, what in (
        (identity_model, embedding_lib.FaceEmbedding.dlib_resnet,
         "Identity features"),
        (attribute_model, embedding_lib.FaceEmbedding.dlib_pooled_features,
         "Attribute features")):
      embedding, _ = embedding_lib.embedding_from_spec(spec, factory, what)
      if embedding is not None:
        embeddings.append(embedding)
  return RefinedAlbedo(networks[reconstructor], decoder,
                       networks.get(mesh_refiner), networks.get(faid_refiner),
                       embeddings, name="robust_refined_albedo")
