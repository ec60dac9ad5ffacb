"""The method-agnostic training loop under tf.distribute.

    config = TrainConfig(model_dir="runs/mgc", method="mgcnet",
                         method_config=MGCNetConfig()).validate()
    Trainer(config, method_class).train()

The trainer knows no method by name: it builds the method it is given
(`mgc_tf.methods`), builds every network the method declares, and runs the
method's stages in order. One step: the method's objective (forward pass
and loss) runs per replica, divided by the global batch; the gradients of
the current stage's variables are summed over replicas, checked, optionally
clipped, and applied by Adam. A step whose loss or gradients are not finite
is skipped and counted; after `max_consecutive_nonfinite` in a row the run
stops, keeping the last good checkpoint.

A skipped step (or a batch with non-finite input, rejected at the step
boundary and counted) leaves every variable untouched, batch-norm moving
statistics included. The step counter still advances: it counts batches
drawn, so a resume continues the data order where the run stopped.

Checkpoints (`tf.train.CheckpointManager` in model_dir) hold every network
of the method, the optimizer and the step; a run resumes from the latest
one, inside the stage that step belongs to. SIGTERM/SIGINT (preemption,
Ctrl-C) saves a checkpoint at the end of the current step and exits; a due
save is never skipped (after a skipped step it holds the last applied
state). The resolved configuration is written to model_dir/config.json and
the model description (what `Reconstructor.from_run` reads) to
model_dir/model.json, atomically, after the directory's lock is taken and
the description is checked against the run's (`training.run_dir`).
"""

import os
import signal
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

import mgc_tf
from mgc_tf.data import augment as augment_lib
from mgc_tf.data import extra_features
from mgc_tf.data import pipeline
from mgc_tf.data import prepare
from mgc_tf.facemodel import decoder as face_decoder
from mgc_tf.facemodel import loaders
from mgc_tf.models import description as description_lib
from mgc_tf.models import registry
from mgc_tf.render import rasterizer
from mgc_tf.training import distribution
from mgc_tf.training import progress as progress_lib
from mgc_tf.training import run_dir
from mgc_tf.training import schedule as schedule_lib
from mgc_tf.training import summaries
from mgc_tf.training.config import TrainConfig

# The name of the network every method trains (see mgc_tf.methods.base).
RECONSTRUCTOR = "reconstructor"


class NonFiniteLossError(RuntimeError):
  """Too many non-finite steps in a row; the last good checkpoint is kept."""


def face_model_choice(config) -> Tuple[Optional[str], bool]:
  """The face model a run uses: (what `load_face_model` takes, whether the
  resumed run chose it).

  `--face_model` when given; unset: the packaged model of the run being
  resumed (its model.json), else the one the synthetic training data is
  rendered from, else the package default (`loaders.DEFAULT_FACE_MODEL`).
  Data that is not prepared records no model: `Trainer` prepares missing
  synthetic data before it asks.

  Raises:
    ValueError: the training data mixes synthetic sets of two face models.
  """
  if config.face_model:
    return config.face_model, False
  path = os.path.join(config.model_dir, description_lib.FILE_NAME)
  if tf.train.latest_checkpoint(config.model_dir) and tf.io.gfile.exists(
      path):
    try:
      recorded = description_lib.read(config.model_dir)
    except (ValueError, OSError):
      recorded = None  # _check_same_model says what is wrong with it.
    if recorded is not None:
      return (recorded.face_model_path or
              loaders.packaged_name_of(recorded.face_model_name)), True
  sources = pipeline.parse_sources(config.dataset, data_dir=config.data_dir)
  rendered = {name for name in (
      pipeline.rendered_face_model(spec, config.data_dir)
      for spec in sources) if name}
  if len(rendered) > 1:
    raise ValueError(
        f"--dataset={config.dataset} mixes synthetic data rendered from "
        f"different face models ({', '.join(sorted(rendered))}): train on "
        "one model's data, with --face_model set to it.")
  return (rendered.pop() if rendered else loaders.DEFAULT_FACE_MODEL), False


class Trainer:
  """Builds everything a run needs from a `TrainConfig` and a method; trains.

  Args:
    config: the run's configuration; `config.method_config` is the method's
      section.
    method_class: the method (`mgc_tf.methods.base.Method` subclass) to
      build with `method_class(config.method_config, setup)`.
    strategy: optional tf.distribute strategy (default: from the config).

  Attributes:
    config: the validated configuration.
    strategy: the tf.distribute strategy.
    method: the method instance.
    networks: name -> Keras model, every network the method trains.
    model: the reconstructor (image [B,S,S,3] in [0,1] -> [B,K]).
    decoder: the FaceDecoder of the face model.
    stages: the method's stages, in order.
    optimizer: Adam (wrapped in a LossScaleOptimizer under mixed precision).
    step: int64 variable, the global step (checkpointed).
    skipped_steps: int64 variable, non-finite steps skipped so far.
  """

  def __init__(self, config: TrainConfig, method_class,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config.validate()
    self.strategy = strategy or distribution.make_strategy(
        config.strategy, config.num_cpu_devices)
    self.is_chief = distribution.is_chief(self.strategy)
    if config.mixed_precision:
      keras.mixed_precision.set_dtype_policy("mixed_float16")
    # Process-wide, like the dtype policy: every render the method's losses
    # make (traced inside the step) uses it.
    rasterizer.set_default_backend(_value(config.rasterizer))
    if (config.jit_compile and rasterizer.resolve_backend() !=
        rasterizer.Backend.XLA):
      raise ValueError("--jit_compile needs the xla rasterizer: "
                       "--rasterizer=auto chose the kernel on this CPU; "
                       "pass --rasterizer=xla")
    # The data first: the face model may be the one it is rendered from.
    self.prepare_data()
    self.face_model_path, self.face_model_from_run = face_model_choice(
        config)
    self.face_model = loaders.load_face_model(self.face_model_path)
    self.decoder = face_decoder.FaceDecoder(self.face_model)
    self.num_coefficients = self.decoder.layout.size
    with self.strategy.scope():
      keras.utils.set_random_seed(config.seed)
      self.method = method_class(
          config.method_config, decoder=self.decoder,
          backbone=_value(config.backbone),
          backbone_weights=config.backbone_weights,
          image_size=config.image_size, num_views=config.num_views,
          global_batch_size=config.batch_size)
      self.network_specs = self.method.network_specs()
      if RECONSTRUCTOR not in self.network_specs:
        raise ValueError(f"Method {self.method.name!r} declares no "
                         f"{RECONSTRUCTOR!r} network.")
      self.networks = {name: registry.build(spec)
                       for name, spec in self.network_specs.items()}
      self.model = self.networks[RECONSTRUCTOR]
      self.schedule = schedule_lib.WarmupSchedule(
          config.learning_rate, config.lr_schedule, config.max_steps,
          config.warmup_steps)
      optimizer = keras.optimizers.Adam(learning_rate=self.schedule)
      if config.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      # Variables must exist before the first (distributed) step.
      self.optimizer.build(self._trainable_variables(None))
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="skipped_steps")
      self.rejected_batches = tf.Variable(0, dtype=tf.int64, trainable=False,
                                          name="rejected_batches")
    self.stages = tuple(self.method.stages())
    _check_stages(self.stages, self.networks, config.max_steps)
    # The reconstructor keeps the checkpoint key "model" (runs written
    # before the method layer restore unchanged); other networks are
    # "network_<name>".
    tracked = {"network_" + name: net for name, net in self.networks.items()
               if name != RECONSTRUCTOR}
    self.checkpoint = tf.train.Checkpoint(
        model=self.model, optimizer=self.optimizer, step=self.step,
        skipped_steps=self.skipped_steps,
        rejected_batches=self.rejected_batches, **tracked)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint,
        distribution.worker_dir(config.model_dir, self.strategy),
        max_to_keep=config.keep_checkpoints)
    self._stop_signal = None
    self._stopping = False
    self._any_worker_stopping = None
    self._train_steps = {}
    self._replica_compute = {}
    self._checkpoint_estimate = None

  @property
  def stopped_by_signal(self) -> bool:
    """Whether the last `train` call stopped early on SIGTERM/SIGINT (this
    worker's, or under multi-worker training any worker's)."""
    return self._stopping

  def _trainable_variables(self, names, frozen=()) -> List[tf.Variable]:
    """Trainable variables of the named networks (None: all), in order,
    less those of the nested layers named "network/layer" in `frozen`."""
    chosen = [n for n in self.networks if names is None or n in names]
    fixed = {id(v) for path in frozen
             for v in _nested_layer(self.networks, path).trainable_variables}
    variables = []
    for name in chosen:
      variables.extend(v for v in self.networks[name].trainable_variables
                       if id(v) not in fixed)
    return variables

  def _non_trainable_variables(self) -> List[tf.Variable]:
    variables = []
    for network in self.networks.values():
      variables.extend(network.non_trainable_variables)
    return variables

  def stage_index(self, step: int) -> int:
    """The index of the stage that global step `step` belongs to."""
    end = 0
    for index, stage in enumerate(self.stages):
      end += stage.steps
      if stage.steps == 0 or step < end:
        return index
    return len(self.stages) - 1

  def stage_start(self, index: int) -> int:
    return sum(stage.steps for stage in self.stages[:index])

  # ---------------------------------------------------------------- data

  def _sources(self):
    return pipeline.parse_sources(self.config.dataset,
                                  data_dir=self.config.data_dir)

  def prepare_data(self) -> None:
    """Builds missing synthetic datasets (train and eval) when allowed."""
    if not self.config.build_data_if_missing:
      return
    data_dir = self.config.data_dir
    wanted = [(spec.name, spec.data_dir or data_dir)
              for spec in self._sources()]
    if self.config.eval_dataset:
      wanted.append((self.config.eval_dataset, data_dir))
    for name, directory in dict.fromkeys(wanted):
      prepare.ensure_synthetic(name, directory)

  def _check_face_model(self, builders) -> None:
    """Training and evaluation data must be rendered from this run's face
    model where they record one (before the first step, not at the first
    evaluation)."""
    builders = list(builders)
    if self.config.eval_dataset:
      try:
        builders.append(pipeline.load_builder(
            pipeline.SourceSpec(self.config.eval_dataset),
            self.config.data_dir))
      except pipeline.DatasetNotPreparedError:
        pass  # The evaluation reports it in its own words.
    for builder in builders:
      try:
        pipeline.check_face_model(builder, self.face_model)
      except pipeline.DatasetError as error:
        if self.face_model_from_run:
          raise pipeline.DatasetError(
              f"{error} (--face_model is unset, so the run in "
              f"--model_dir={self.config.model_dir} chose it: resume it on "
              "its own data, or choose a new --model_dir)") from error
        raise

  def distributed_dataset(self, start_step: int):
    """The training batches, distributed over the replicas."""
    config = self.config
    sources = self._sources()
    builders = [pipeline.load_builder(spec, config.data_dir)
                for spec in sources]
    self._check_face_model(builders)
    self._note_missing_extras(builders)
    replicas = self.strategy.num_replicas_in_sync
    if config.batch_size % replicas:
      raise ValueError(
          f"--batch_size={config.batch_size} is not divisible by the "
          f"{replicas} replicas; the rasterizer needs equal static batches")

    def dataset_fn(context: tf.distribute.InputContext):
      pipeline_config = pipeline.PipelineConfig(
          num_views=config.num_views, image_size=config.image_size,
          batch_size=context.get_per_replica_batch_size(config.batch_size),
          shuffle_buffer=config.shuffle_buffer,
          augment=(augment_lib.AugmentConfig() if config.augment
                   else augment_lib.NO_AUGMENTATION),
          deterministic=config.deterministic,
          # A resumed run continues with a new data order.
          seed=config.seed + start_step, data_dir=config.data_dir,
          extra_features=tuple(self.method.extra_features),
          exact_mix=config.exact_mix)
      return pipeline.training_dataset(sources, pipeline_config,
                                       input_context=context,
                                       builders=builders)

    return self.strategy.distribute_datasets_from_function(dataset_fn)

  # ---------------------------------------------------------------- step

  def _replica_step(self, batch, stage, variables):
    compute = self._replica_compute.get(id(stage))
    if compute is None:
      compute = lambda b: self._replica_gradients(b, stage, variables)  # pylint: disable=g-long-lambda
      if self.config.jit_compile:
        # Only the replica's own maths: the batch-norm sync below and the
        # cross-replica reduction stay outside XLA (collectives there
        # depend on the strategy).
        compute = tf.function(compute, jit_compile=True)
      self._replica_compute[id(stage)] = compute
    gradients, total, terms, bad_input = compute(batch)
    self._sync_non_trainable_variables()
    return gradients, total, terms, bad_input

  def _replica_gradients(self, batch, stage, variables):
    """Forward, loss and backward on one replica's batch (XLA-compilable)."""
    # Non-finite input is rejected here, at the boundary: the batch is
    # zeroed where it is not finite (so the forward pass stays finite) and
    # flagged, and the step is not applied (see _make_train_step).
    batch, bad_input = _sanitized(batch)
    with tf.GradientTape() as tape:
      out = self.method.objective(self.networks, batch, stage, training=True)
      total = out.total
      if self.config.mixed_precision:
        total_for_gradient = self.optimizer.scale_loss(total)
      else:
        total_for_gradient = total
    gradients = tape.gradient(total_for_gradient, variables)
    gradients = [tf.zeros_like(v) if g is None else g
                 for g, v in zip(gradients, variables)]
    return gradients, total, out.terms, bad_input

  def _sync_non_trainable_variables(self):
    """Averages the batch-norm moving statistics over all replicas.

    Each replica updates them from its own batch; without this, workers of a
    multi-worker run would end with different statistics (and different
    exported models depending on which worker saved).
    """
    context = tf.distribute.get_replica_context()
    variables = self._non_trainable_variables()
    if context is None or context.num_replicas_in_sync == 1 or not variables:
      return
    averaged = context.all_reduce(tf.distribute.ReduceOp.MEAN,
                                  [tf.identity(v) for v in variables])
    for variable, value in zip(variables, averaged):
      variable.assign(value)

  def _make_train_step(self, stage):
    strategy = self.strategy
    clip = self.config.clip_grad_norm
    mixed = self.config.mixed_precision
    variables = self._trainable_variables(stage.networks,
                                          getattr(stage, "frozen", ()))

    def train_step(batch):
      # A step that is not applied must leave every variable as it was.
      # The forward pass in training mode updates the batch-norm moving
      # statistics (and _sync_non_trainable_variables averages them), so
      # they are read here, before it, and written back if the step is
      # not applied. In cross-replica context a read gives the (synced,
      # identical) value and an assign writes every replica's copy.
      state = self._non_trainable_variables()
      snapshot = [tf.identity(v) for v in state]
      gradients, total, terms, bad_input = strategy.run(
          self._replica_step, args=(batch, stage, variables))
      reduce = lambda value: strategy.reduce(  # pylint: disable=g-long-lambda
          tf.distribute.ReduceOp.SUM, value, axis=None)
      gradients = [reduce(g) for g in gradients]
      total = reduce(total)
      terms = {name: reduce(value) for name, value in terms.items()}
      rejected = reduce(bad_input) > 0
      if mixed:
        # The loss scale optimizer unscales, checks and skips by itself;
        # overflow of the scaled float16 gradients is routine there.
        finite = tf.math.is_finite(total)
        grad_norm = tf.linalg.global_norm(gradients) / tf.cast(
            self.optimizer.scale_loss(1.0), tf.float32)
      else:
        finite = tf.math.is_finite(total) & tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
        grad_norm = tf.linalg.global_norm(gradients)
      if clip > 0 and not mixed:
        gradients, _ = tf.clip_by_global_norm(gradients, clip,
                                              use_norm=grad_norm)

      def apply():
        self.optimizer.apply(gradients, variables)
        return tf.constant(True)

      def restore():
        for variable, value in zip(state, snapshot):
          variable.assign(value)
        return tf.constant(False)

      finite = finite & tf.logical_not(rejected)
      applied = tf.cond(finite, apply, restore)
      self.step.assign_add(1)
      self.skipped_steps.assign_add(tf.cast(tf.logical_not(applied), tf.int64))
      self.rejected_batches.assign_add(tf.cast(rejected, tf.int64))
      return {"total": total, "terms": terms, "applied": applied,
              "rejected": rejected,
              "grad_norm": grad_norm,
              "learning_rate": self.schedule(self.step - 1)}

    return tf.function(train_step)

  def _train_step_of(self, index: int):
    if index not in self._train_steps:
      self._train_steps[index] = self._make_train_step(self.stages[index])
    return self._train_steps[index]

  # ---------------------------------------------------------------- loop

  def _install_signal_handlers(self):
    def handler(signum, frame):  # pylint: disable=unused-argument
      self._stop_signal = signum
      print(f"\nReceived {signal.Signals(signum).name}: saving a checkpoint "
            "at the end of this step, then stopping.", flush=True)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
      try:
        previous[signum] = signal.signal(signum, handler)
      except ValueError:  # not the main thread
        pass
    return previous

  def _agree_to_stop(self) -> bool:
    """Whether to stop after this step: this worker got a stop signal or,
    with several workers, any of them did.

    Under MultiWorkerMirrored every save and every step is a collective: a
    worker that stopped (saved, exited) while another ran one more step
    would leave that one waiting in an all-reduce forever. Signals reach the
    workers at slightly different times (srun forwards them one task at a
    time), so after every step the workers sum their flags in one tiny
    all-reduce and all stop at the same step.
    """
    local = self._stop_signal is not None
    if distribution.num_workers(self.strategy) <= 1:
      return local
    if self._any_worker_stopping is None:
      strategy = self.strategy

      @tf.function
      def any_worker_stopping(flag):
        per_replica = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                               axis=None)

      self._any_worker_stopping = any_worker_stopping
    agreed = float(self._any_worker_stopping(
        tf.constant(1.0 if local else 0.0)).numpy()) > 0
    if agreed and not local:
      print("\nAnother worker received a stop signal: saving a checkpoint "
            "at the end of this step, then stopping.", flush=True)
    return agreed

  def restore(self) -> int:
    """Restores the latest checkpoint if there is one; returns the step.

    Every worker restores the chief's checkpoint in model_dir (which every
    worker must see): a non-chief worker's own saves go to a scratch folder
    that may be stale (an earlier run on that machine) or missing (a
    requeued job on other nodes), and workers that resume at different
    steps would train different models.
    """
    latest = tf.train.latest_checkpoint(self.config.model_dir)
    if latest:
      self.checkpoint.restore(latest).expect_partial()
      print(f"Resumed from {latest} at step {int(self.step.numpy())}",
            flush=True)
    return int(self.step.numpy())

  def save(self) -> Optional[str]:
    """Saves a checkpoint at the current step (all workers must call it).

    Raises:
      run_dir.ModelDirWriteError: less free space than the last checkpoint
        took (checked first), or the write failed (full disk, no
        permission); the partial files are removed and earlier checkpoints
        stay intact.
    """
    step = int(self.step.numpy())
    directory = self.manager.directory
    previous = _checkpoint_step(self.manager.latest_checkpoint)
    run_dir.check_free_space(directory, self._checkpoint_size(),
                             what=f"ckpt-{step}")
    try:
      path = self.manager.save(checkpoint_number=step)
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
            tf.errors.UnknownError, tf.errors.InternalError,
            OSError) as error:
      run_dir.clean_orphans(directory, previous)
      raise run_dir.write_error(os.path.join(directory, f"ckpt-{step}"),
                                error) from error
    if self.is_chief:
      print(f"Saved checkpoint {path}", flush=True)
    return path

  def _checkpoint_size(self) -> int:
    """Bytes of the last checkpoint, else of the variables it will hold."""
    step = _checkpoint_step(self.manager.latest_checkpoint)
    if step is not None:
      size = run_dir.directory_size(
          run_dir.checkpoint_files(self.manager.directory, step))
      if size:
        return size
    if self._checkpoint_estimate is None:
      variables = list(self.optimizer.variables)
      for network in self.networks.values():
        variables.extend(network.variables)
      self._checkpoint_estimate = sum(
          int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size
          for v in variables)
    return self._checkpoint_estimate

  def _check_same_model(self) -> None:
    """Refuses to resume a run of another model, before writing anything.

    Raises:
      run_dir.RunMismatchError: model_dir has checkpoints and a model.json
        whose fields (method, image size, networks, face model, coefficient
        layout, outputs) differ from what these flags build.
    """
    # Every worker checks, against the chief's files in model_dir (a
    # non-chief worker saves into a scratch folder of its own), so that no
    # worker starts while another refuses.
    model_dir = self.config.model_dir
    if not tf.train.latest_checkpoint(model_dir):
      return
    path = os.path.join(model_dir, description_lib.FILE_NAME)
    if not tf.io.gfile.exists(path):
      return
    with tf.io.gfile.GFile(path) as f:
      text = f.read()
    try:
      differences = run_dir.compare_descriptions(
          text, self.model_description().to_json())
    except ValueError as error:
      raise run_dir.RunMismatchError(
          f"{path} cannot be read ({error}), so the checkpoints in "
          f"{model_dir} cannot be checked against these model flags; "
          "restore it, or choose a new --model_dir.") from error
    if differences:
      raise run_dir.RunMismatchError(
          f"--model_dir={model_dir} holds a run of another model: "
          + "; ".join(differences) + ". Resume it with its own model flags "
          f"(see {os.path.join(model_dir, 'config.json')}) or choose a new "
          "--model_dir.")

  def _clean_orphans(self) -> None:
    """Removes partial files that killed or failed saves left (lock held)."""
    directory = self.manager.directory
    state = tf.train.get_checkpoint_state(directory)
    latest = _checkpoint_step(state.model_checkpoint_path if state else None)
    removed = run_dir.clean_orphans(directory, latest)
    if removed:
      print(f"Removed {len(removed)} partial file(s) that an interrupted "
            f"save left in {directory}: "
            + ", ".join(os.path.basename(p) for p in removed), flush=True)

  def model_description(self) -> description_lib.ModelDescription:
    """What model.json says of this run's model."""
    return description_lib.ModelDescription(
        method=self.method.name, image_size=self.config.image_size,
        face_model_path=self.face_model_path,
        face_model_name=self.face_model.name,
        face_model_fingerprint=self.face_model.fingerprint(),
        coefficients=description_lib.layout_sizes(self.decoder.layout),
        networks=dict(self.network_specs),
        outputs={name: spec.to_dict()
                 for name, spec in self.method.outputs().items()},
        mgc_tf_version=mgc_tf.__version__,
        inference=self.method.inference_spec())

  def _write_config(self):
    """config.json and model.json, each written atomically."""
    if not self.is_chief:
      return
    model_dir = self.config.model_dir
    try:
      tf.io.gfile.makedirs(model_dir)
    except (tf.errors.OpError, OSError) as error:
      raise run_dir.write_error(model_dir, error) from error
    run_dir.atomic_write(os.path.join(model_dir, "config.json"),
                         self.config.to_json())
    run_dir.atomic_write(os.path.join(model_dir, description_lib.FILE_NAME),
                         self.model_description().to_json())

  def train(self, evaluate_fn=None) -> Dict[str, float]:
    """Trains to max_steps (or a stop signal); returns the last metrics.

    First, holding this worker's directory lock: refuse a run of another
    model, remove what interrupted saves left, write config.json and
    model.json.

    Args:
      evaluate_fn: optional callable(trainer) -> dict of metrics, run on the
        chief every eval_every steps and at the end, written to TensorBoard
        under eval/.

    Raises:
      NonFiniteLossError: after max_consecutive_nonfinite skipped steps in a
        row (the last good checkpoint is kept; nothing is saved after them).
      run_dir.RunDirError: another trainer holds the directory
        (RunLockedError), the flags build another model than the run's
        (RunMismatchError), or model_dir cannot be written
        (ModelDirWriteError); one line each.
    """
    directory = self.manager.directory
    lock = (run_dir.RunLock(directory) if run_dir.is_local(directory)
            else None)
    if lock is not None:
      try:
        lock.acquire()
      except OSError as error:
        raise run_dir.write_error(directory, error) from error
    try:
      return self._train(evaluate_fn)
    finally:
      if lock is not None:
        lock.release()

  def _train(self, evaluate_fn) -> Dict[str, float]:
    config = self.config
    self._check_same_model()
    self._clean_orphans()
    self._write_config()
    start_step = self.restore()
    if start_step >= config.max_steps:
      print(f"Already at step {start_step} >= max_steps {config.max_steps}; "
            "nothing to do.", flush=True)
      return {}
    dataset = self.distributed_dataset(start_step)
    self._check_features(dataset.element_spec)
    iterator = iter(dataset)
    writer = summaries.SummaryWriter(config.model_dir, enabled=self.is_chief)
    progress = progress_lib.Progress(start_step, config.max_steps,
                                     config.batch_size,
                                     enabled=self.is_chief)
    previous_handlers = self._install_signal_handlers()
    print(f"Training {_value(config.backbone)} "
          f"with method {self.method.name} on {config.dataset} with "
          f"{distribution.describe(self.strategy)}; global batch "
          f"{config.batch_size} x {config.num_views} views, "
          f"{config.image_size} px; steps {start_step} -> {config.max_steps}",
          flush=True)
    described = getattr(self.method, "describe", lambda: "")()
    if described and self.is_chief:
      print(f"Method {self.method.name}: {described}", flush=True)
    consecutive_nonfinite = 0
    last = {}
    step = start_step
    stage_index = None
    try:
      while step < config.max_steps:
        if self.stage_index(step) != stage_index:
          stage_index = self.stage_index(step)
          self._announce_stage(stage_index, step)
        batch = next(iterator)
        outputs = self._train_step_of(stage_index)(batch)
        step = int(self.step.numpy())
        applied = bool(outputs["applied"].numpy())
        total = float(outputs["total"].numpy())
        consecutive_nonfinite = 0 if applied else consecutive_nonfinite + 1
        if not applied:
          what = ("non-finite values in the input batch (rejected, "
                  f"{int(self.rejected_batches.numpy())} in all)"
                  if bool(outputs["rejected"].numpy())
                  else f"non-finite loss or gradient ({total})")
          print(f"step {step}: {what}; update skipped "
                f"({consecutive_nonfinite} in a row, "
                f"{int(self.skipped_steps.numpy())} in all)", flush=True)
          if consecutive_nonfinite >= config.max_consecutive_nonfinite:
            raise NonFiniteLossError(
                f"{consecutive_nonfinite} non-finite steps in a row at step "
                f"{step}; stopping. The last good checkpoint is "
                f"{self.manager.latest_checkpoint}. Lower --learning_rate, "
                "set --clip_grad_norm, or check the data.")
        last = {"loss/total": total,
                "learning_rate": float(outputs["learning_rate"].numpy()),
                "grad_norm": float(outputs["grad_norm"].numpy()),
                "skipped_steps": float(self.skipped_steps.numpy()),
                "rejected_batches": float(self.rejected_batches.numpy()),
                "stage": float(stage_index)}
        last.update({f"loss/{name}": float(value.numpy())
                     for name, value in outputs["terms"].items()})
        rate = progress.update(step)
        if step % config.log_every == 0 or step == config.max_steps:
          progress.log(step, total)
        if step % config.summary_every == 0:
          writer.scalars(step, dict(last, examples_per_second=rate))
        if (config.image_summary_every
            and step % config.image_summary_every == 0 and self.is_chief):
          self._image_summaries(writer, batch, step, stage_index)
        stopping = self._stopping = self._agree_to_stop()
        # A skipped step left every variable as the last applied step did,
        # so a save that is due (periodic, the last step, a stop signal)
        # is never skipped: ckpt-<step> holds the last applied state, with
        # the step counting the batches consumed (skipped ones included).
        if (step % config.checkpoint_every == 0 or step == config.max_steps
            or stopping):
          self.save()
        if (evaluate_fn is not None and self.is_chief and config.eval_every
            and step % config.eval_every == 0 and step != config.max_steps):
          writer.scalars(step, _prefixed(evaluate_fn(self), "eval/"))
        if stopping:
          break
    finally:
      for signum, handler in previous_handlers.items():
        signal.signal(signum, handler)
      writer.flush()
      rejected = int(self.rejected_batches.numpy())
      if rejected and self.is_chief:
        print(f"Rejected {rejected} input batch(es) with non-finite values "
              "so far in this run (their steps were skipped).", flush=True)
    if evaluate_fn is not None and self.is_chief and not self._stopping:
      metrics = evaluate_fn(self)
      writer.scalars(step, _prefixed(metrics, "eval/"))
      writer.flush()
      last.update(_prefixed(metrics, "eval/"))
    return last

  def _note_missing_extras(self, builders) -> None:
    """One console line per extra feature that no source stores."""
    if not self.is_chief:
      return
    counts = extra_features.given_by(builders, self.method.extra_features)
    for name, count in counts.items():
      if not count:
        print(f"Note: no source of --dataset={self.config.dataset} stores "
              f"{name!r}; the method's terms that need it are off "
              f"(has_{name} is False for every sample).", flush=True)

  def _check_features(self, element_spec) -> None:
    """Raises ValueError naming the batch features the method misses."""
    required = getattr(self.method, "required_features", ())
    missing = [name for name in required if name not in element_spec]
    if missing:
      raise ValueError(
          f"Method {self.method.name!r} needs the batch features {missing}, "
          f"which --dataset={self.config.dataset} does not give (it gives "
          f"{sorted(element_spec)}). Train on a source that has them; the "
          "method accepts " +
          ", ".join(getattr(self.method, "accepted_sources", ())) + ".")

  def _announce_stage(self, index: int, step: int) -> None:
    if len(self.stages) == 1 or not self.is_chief:
      return
    stage = self.stages[index]
    start = self.stage_start(index)
    end = (start + stage.steps) if stage.steps else self.config.max_steps
    print(f"Stage {index + 1}/{len(self.stages)} {stage.name!r}: steps "
          f"{start} -> {end} (from {step}); training "
          f"{', '.join(stage.networks or self.networks)}"
          + "".join(f" (fixed: {path})" for path in getattr(stage, "frozen",
                                                             ()))
          + f"; terms {', '.join(stage.terms) if stage.terms else 'all'}",
          flush=True)

  def _image_summaries(self, writer, batch, step: int,
                       stage_index: int) -> None:
    """The method's image panels of the first replica's batch."""
    local = self.strategy.experimental_local_results(batch)[0]
    out = self.method.objective(self.networks, local,
                                self.stages[stage_index], training=False)
    images = self.method.summary_images(out, local)
    if images:
      writer.images(step, images)


def _checkpoint_step(path: Optional[str]) -> Optional[int]:
  """12 for ".../ckpt-12"; None for None."""
  if not path:
    return None
  return int(os.path.basename(path).rsplit("-", 1)[1])


def _value(mode):
  return getattr(mode, "value", mode)


def _check_stages(stages, networks, max_steps: int) -> None:
  """Raises ValueError unless the stages fit the networks and max_steps."""
  if not stages:
    raise ValueError("A method needs at least one stage.")
  for index, stage in enumerate(stages):
    if stage.steps < 0:
      raise ValueError(f"Stage {stage.name!r} has {stage.steps} steps.")
    if stage.steps == 0 and index != len(stages) - 1:
      raise ValueError(f"Only the last stage may run to max_steps; stage "
                       f"{stage.name!r} has steps=0.")
    unknown = set(stage.networks or ()) - set(networks)
    if unknown:
      raise ValueError(f"Stage {stage.name!r} trains unknown networks "
                       f"{sorted(unknown)}; the method has {list(networks)}.")
    for path in getattr(stage, "frozen", ()):
      _nested_layer(networks, path)


def _nested_layer(networks, path: str):
  """The layer "network/layer" (a direct layer of a network), e.g.
  "reconstructor/resnet18_backbone"; ValueError naming the choices."""
  network, _, layer = path.partition("/")
  if network not in networks or not layer:
    raise ValueError(f"Frozen layer {path!r} must be 'network/layer' with a "
                     f"network of {sorted(networks)}.")
  if not isinstance(networks, dict):  # names only (a check before building)
    return None
  names = [l.name for l in networks[network].layers]
  if layer not in names:
    raise ValueError(f"Frozen layer {path!r}: {network!r} has no layer "
                     f"{layer!r} (layers: {', '.join(names)}).")
  return networks[network].get_layer(layer)


def _prefixed(metrics: Dict[str, float], prefix: str) -> Dict[str, float]:
  return {prefix + name: value for name, value in metrics.items()}


def _sanitized(batch):
  """(batch with non-finite float values zeroed, 1.0 if there were any).

  Checks every floating feature (images, landmarks, skin, ...): a user's
  own tf.data source can hold NaN/inf that the builders never write.
  """
  flat = tf.nest.flatten(batch)
  bad = tf.constant(False)
  clean = []
  for value in flat:
    if isinstance(value, tf.Tensor) and value.dtype.is_floating:
      finite = tf.math.is_finite(value)
      bad = bad | tf.logical_not(tf.reduce_all(finite))
      value = tf.where(finite, value, tf.zeros_like(value))
    clean.append(value)
  return tf.nest.pack_sequence_as(batch, clean), tf.cast(bad, tf.float32)
