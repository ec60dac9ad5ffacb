"""Dataset builds that run on Apache Beam or as a plain generator.

A large builder cuts a split into *units* of work that share nothing (one
300W-LP source photo, one Multi-PIE capture, one CelebA identity, one
video, one batch of synthetic scenes). The driver lists the files and forms
the units; `process(unit, tallies)` does the per-file work (decode, detect,
align, render) and yields `(key, example)` pairs, counting kept and skipped
items in `tallies` (`SkipCounter`s and `FrameTally`s by role, e.g.
{"groups": ..., "views": ...}).

How a build chooses (`BeamBuild._generate_examples`):
  * given Beam pipeline options or a runner (`tfds build
    --beam_pipeline_options=...`, or `DownloadConfig(beam_options=...)`):
    the units become a Beam `PTransform`; the workers run `process`;
  * otherwise (no options, whatever the config's size, and whether or not
    apache-beam is installed): a plain generator, as before, which never
    imports apache-beam.

Skip-and-count across workers: each unit runs on fresh, empty tallies;
afterwards its totals go to Beam metrics: counters for kept and per-reason
counts, a distribution whose minimum orders the reasons, and one counter per
example line of the report, named after the line (Beam's string-set metric
would be the natural carrier, but the local runner in multi_processing mode
keeps only one worker's set: measured with apache-beam 2.77). When the
pipeline is done the driver refills the builder's tallies from the metrics
and prints the same report, line for line, as the single-process build.

Keys come from the data (file names), never from the order of processing,
so 1 or N workers give the same keys and TFDS writes the same shards.
"""

import bisect
import functools
import json
import os
import sys
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Sequence, Tuple)

from mgc_tf.io.bad_input import TallyState

KeyExample = Tuple[str, dict]
# process(unit, {role: tally}) -> (key, example) pairs.
Process = Callable[[Any, Mapping[str, Any]], Iterable[KeyExample]]

# Metric names: "<role>|<kind>|<reason>"; a role never holds "|".
_SEP = "|"
_KEPT = "kept"
_COUNT = "count"
_FIRST = "first"
_EXAMPLES = "examples"
# A reason's first occurrence as one integer: unit index * _POSITIONS +
# the reason's position among the unit's reasons (a unit has far fewer).
_POSITIONS = 1 << 12
_NAMESPACE_PREFIX = "mgc_tf.skips"


# Beam's local multi-process engine. `runner=DirectRunner` (2.77) first tries
# the Prism runner, which it downloads from GitHub at run time; offline that
# fails after a second or so and it falls back to this engine. Naming it
# skips the download and runs the same way with or without a network.
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def local_options_string(workers: int) -> str:
  """`--beam_pipeline_options` for `workers` local worker processes."""
  if workers < 0:
    raise ValueError(f"workers must be >= 0 (0: one per core); Received: "
                     f"{workers}")
  return (f"runner={LOCAL_RUNNER},direct_num_workers={workers},"
          "direct_running_mode=multi_processing")


def local_options(workers: int):
  """Beam `PipelineOptions` for `workers` local worker processes (0: one
  per core), for `tfds.download.DownloadConfig(beam_options=...)`."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  return PipelineOptions(
      flags=[f"--{option}" for option in
             local_options_string(workers).split(",")])


def beam_requested(download_config) -> bool:
  """Whether a build was given Beam pipeline options or a runner."""
  return download_config is not None and bool(
      download_config.beam_options is not None
      or download_config.beam_runner is not None)


def generate(units: Iterable[Any], process: Process,
             tallies: Mapping[str, Any]) -> Iterator[KeyExample]:
  """The single-process build: every unit in order, then the reports.

  Args:
    units: the split's units, in the order the reports list their examples.
    process: see the module docstring.
    tallies: {role: SkipCounter or FrameTally}, reported in this order.

  Yields:
    (key, example) pairs, as tfds' `_generate_examples` expects.
  """
  for unit in units:
    yield from process(unit, tallies)
  for tally in tallies.values():
    tally.report()


# process_local's objects; in mgc_tf, which Beam pickles by reference, so
# they are never shipped with a builder's functions.
_PROCESS_LOCAL: Dict[Any, Any] = {}


def process_local(key, make: Callable[[], Any]) -> Any:
  """One object per process and key, made by `make()` on first use.

  For what a unit needs and is costly to build (a renderer with its
  compiled function, a face detector): once per Beam worker process, once
  per plain build. A builder must not keep such objects in its own module
  globals: Beam ships a builder's functions by value with their globals.
  """
  if key not in _PROCESS_LOCAL:
    _PROCESS_LOCAL[key] = make()
  return _PROCESS_LOCAL[key]


def once_per_process(function: Callable) -> Callable:
  """Decorator: `functools.lru_cache` (unbounded) for a builder's helpers.

  Beam ships a builder's module by value, but cloudpickle cannot ship an
  `lru_cache` wrapper: it pickles one by name, which a worker of `tfds
  build tfds_builders/<name>` cannot import. This wrapper is a plain
  function; its results live in `process_local`, so they are not shipped.
  Arguments must be hashable.
  """
  @functools.wraps(function)
  def cached(*args, **kwargs):
    key = (function.__module__, function.__qualname__, args,
           tuple(sorted(kwargs.items())))
    return process_local(key, lambda: function(*args, **kwargs))
  return cached


def metrics_namespace(builder_name: str, config_name: str, split: str) -> str:
  """The Beam metrics namespace of one split's tallies."""
  return f"{_NAMESPACE_PREFIX}/{builder_name}/{config_name}/{split}"


def _check_roles(tallies: Mapping[str, Any]) -> None:
  bad = [role for role in tallies if _SEP in role or not role]
  if bad:
    raise ValueError(f"tally roles must be non-empty and hold no "
                     f"{_SEP!r}; Received: {bad}")


def _ship_by_value(function: Callable) -> None:
  """Lets Beam's workers run `function` without importing its module.

  `tfds build tfds_builders/<name>` imports a builder as the top-level
  package `<name>` from a path only the driver has; Beam would pickle its
  functions (and the units' classes) by reference and a worker could not
  import them. Registered by value, they travel in the pipeline; the
  workers only need the installed `mgc_tf` package.
  """
  from apache_beam.internal.cloudpickle import cloudpickle  # pylint: disable=g-import-not-at-top
  while isinstance(function, functools.partial):
    function = function.func
  top = getattr(function, "__module__", "").split(".")[0]
  if top and top not in ("mgc_tf", "__main__") and top in sys.modules:
    cloudpickle.register_pickle_by_value(sys.modules[top])


def _stage(payload: Sequence[Tuple[int, bytes]], folder: str,
           shard_bytes: int) -> List[str]:
  """Writes the pickled units to files of about `shard_bytes` each.

  Returns:
    the file paths, in order.
  """
  import pickle  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.io.gfile.makedirs(folder)
  shards, current, size = [], [], 0
  for element in payload:
    current.append(element)
    size += len(element[1])
    if size >= shard_bytes:
      shards.append(current)
      current, size = [], 0
  if current:
    shards.append(current)
  paths = []
  for number, shard in enumerate(shards):
    path = f"{folder.rstrip('/')}/units-{number:05d}-of-{len(shards):05d}.pkl"
    with tf.io.gfile.GFile(path, "wb") as f:
      f.write(pickle.dumps(shard, protocol=pickle.HIGHEST_PROTOCOL))
    paths.append(path)
  return paths


def _read_staged(path: str) -> List[Tuple[int, bytes]]:
  import pickle  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path, "rb") as f:
    return pickle.loads(f.read())


# Units travel inside the submitted pipeline up to this many pickled bytes
# (runners limit the size of a submitted job; Dataflow's limit is a few
# megabytes); more are staged in files that the workers read.
MAX_INLINE_BYTES = 4 << 20


def units_transform(units: Sequence[Any], process: Process,
                    tallies: Mapping[str, Any], namespace: str,
                    staging_dir: str = "",
                    max_inline_bytes: int = MAX_INLINE_BYTES):
  """The Beam `PTransform` that turns a split's units into examples.

  The driver pickles each unit (Beam's pickler, so classes of a builder
  shipped by value travel too) and numbers it: the number orders the
  reports' examples as the single-process build orders them. Up to
  `max_inline_bytes` of them go into the pipeline itself; more are written
  to `staging_dir` (on a filesystem the workers share, e.g. below the
  data_dir; the caller removes it after the run) in files of about 1 MB. A
  reshuffle spreads the units over the workers.

  Args:
    units: the split's units, in report order.
    process: see the module docstring; pickled with the pipeline.
    tallies: {role: tally}; their empty copies are the workers' templates.
    namespace: `metrics_namespace(...)` of the split.
    staging_dir: where to stage many units; "" keeps them all inline.
    max_inline_bytes: see above.

  Returns:
    a `beam.PTransform` from the pipeline to (key, example) pairs.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.internal import pickler  # pylint: disable=g-import-not-at-top
  _check_roles(tallies)
  _ship_by_value(process)
  templates = {role: tally.empty_like() for role, tally in tallies.items()}
  payload = [(index, pickler.dumps(unit, use_zlib=True))
             for index, unit in enumerate(units)]
  staged = []
  if staging_dir and sum(len(p) for _, p in payload) > max_inline_bytes:
    staged = _stage(payload, staging_dir, shard_bytes=1 << 20)

  class ProcessUnits(beam.DoFn):
    """Runs `process` on one unit with empty tallies, then publishes them."""

    def __init__(self):
      super().__init__()
      # Per (role, reason): the smallest example order keys published by
      # this instance, sorted; a larger one cannot be among the first few
      # overall, so few example counters exist (about limit * log(units)
      # per worker and reason).
      self._published: Dict[Tuple[str, str], List[str]] = {}

    def process(self, element):
      index, pickled = element
      unit = pickler.loads(pickled, use_zlib=True)
      local = {role: template.empty_like()
               for role, template in templates.items()}
      yield from process(unit, local)
      for role, tally in local.items():
        self._publish(index, role, tally)

    def _publish(self, index: int, role: str, tally) -> None:
      state = tally.state()
      metrics = beam.metrics.Metrics
      metrics.counter(namespace, _name(role, _KEPT)).inc(state.kept)
      limit = getattr(tally, "max_examples_per_reason", 0)
      for position, (reason, count) in enumerate(state.counts.items()):
        metrics.counter(namespace, _name(role, _COUNT, reason)).inc(count)
        metrics.distribution(namespace, _name(role, _FIRST, reason)).update(
            index * _POSITIONS + min(position, _POSITIONS - 1))
        smallest = self._published.setdefault((role, reason), [])
        for number, line in enumerate(state.examples.get(reason, ())[:limit]):
          order = f"{index:012d}.{number:04d}"
          if len(smallest) >= limit and order >= smallest[-1]:
            continue
          bisect.insort(smallest, order)
          del smallest[limit:]
          metrics.counter(namespace, _name(
              role, _EXAMPLES, json.dumps([order, reason, line]))).inc()

  @beam.ptransform_fn
  def process_units(pipeline):
    if staged:
      units_in = (pipeline
                  | "UnitFiles" >> beam.Create(staged)
                  | "SpreadFiles" >> beam.Reshuffle()
                  | "ReadUnits" >> beam.FlatMap(_read_staged))
    else:
      units_in = pipeline | "Units" >> beam.Create(payload)
    return (units_in
            | "Spread" >> beam.Reshuffle()
            | "Process" >> beam.ParDo(ProcessUnits()))

  return process_units()  # pylint: disable=no-value-for-parameter


def _name(role: str, kind: str, reason: str = "") -> str:
  return _SEP.join((role, kind, reason)) if reason else _SEP.join((role, kind))


def tally_states_from_metrics(pipeline_result, namespace: str,
                              tallies: Mapping[str, Any]
                              ) -> Dict[str, TallyState]:
  """Each role's totals over all workers, from the pipeline's metrics.

  Committed values where the runner has them, else attempted ones.
  Reasons are ordered by their first occurrence in unit order, examples by
  unit then by their order within the unit: what one process would have
  recorded.
  """
  from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=g-import-not-at-top
  results = pipeline_result.metrics().query(
      MetricsFilter().with_namespace(namespace))
  kept = {role: 0 for role in tallies}
  counts: Dict[str, Dict[str, int]] = {role: {} for role in tallies}
  first: Dict[str, Dict[str, int]] = {role: {} for role in tallies}
  examples: Dict[str, Dict[str, List[str]]] = {role: {} for role in tallies}

  def value(result):
    return (result.committed if result.committed is not None
            else result.attempted)

  def parse(result):
    role, kind, *reason = result.key.metric.name.split(_SEP, 2)
    return role, kind, (reason[0] if reason else "")

  for result in results.get("counters", ()):
    role, kind, reason = parse(result)
    if role not in kept:
      continue
    if kind == _KEPT:
      kept[role] += value(result)
    elif kind == _COUNT:
      counts[role][reason] = counts[role].get(reason, 0) + value(result)
    elif kind == _EXAMPLES and value(result):
      order, reason, line = json.loads(reason)
      examples[role].setdefault(reason, []).append((order, line))
  for result in results.get("distributions", ()):
    role, kind, reason = parse(result)
    if role in kept and kind == _FIRST and value(result).count:
      first[role][reason] = min(first[role].get(reason, value(result).min),
                                value(result).min)

  states = {}
  for role, tally in tallies.items():
    limit = getattr(tally, "max_examples_per_reason", 0)
    ordered = sorted(counts[role],
                     key=lambda reason, role=role: first[role].get(reason, 0))
    states[role] = TallyState(
        kept=kept[role],
        counts={reason: counts[role][reason] for reason in ordered
                if counts[role][reason]},
        examples={reason: [line for _, line in sorted(set(lines))[:limit]]
                  for reason, lines in examples[role].items()})
  return states


class BeamBuild:
  """Mixin for a `tfds.core.GeneratorBasedBuilder` whose large builds may
  run on Beam; put it before the TFDS base class.

  `_split_generators` returns `self._generate_examples(split, units,
  process, tallies)` for each split: a plain generator, or, when the build
  was given Beam options, a Beam transform whose tallies are refilled from
  the metrics and reported when the pipeline is done.
  """

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = beam_requested(download_config)
    self._beam_tallies: Dict[str, Mapping[str, Any]] = {}
    # Many units are staged here (TFDS's download folder, below the
    # data_dir unless --download_dir moves it) and removed after the run.
    self._staging_dir = (f"{os.fspath(dl_manager.download_dir)}/beam_units/"
                         f"{self.name}/{self.builder_config.name}")
    # Per split, {role: tally} of the last build (read by tests and tools).
    self.tallies: Dict[str, Mapping[str, Any]] = {}
    return super()._download_and_prepare(dl_manager, download_config)

  @property
  def uses_beam(self) -> bool:
    """Whether the build under way runs on Beam."""
    return getattr(self, "_use_beam", False)

  def _generate_examples(self, split: str, units: Sequence[Any],
                         process: Process, tallies: Mapping[str, Any]):
    """The split's generator (plain build) or PTransform (Beam build).

    TFDS's `_generate_examples`, for all builders that mix this in.

    Args:
      split: the split name.
      units: the split's units of work (see the module docstring), in the
        order the single-process build runs them.
      process: a module-level function (or a `functools.partial` of one)
        of (unit, tallies); with Beam it runs in the workers.
      tallies: {role: SkipCounter or FrameTally} the builder keeps and
        reports; with Beam they are filled when the pipeline is done.
    """
    self.tallies[split] = tallies
    if not self.uses_beam:
      return self._generate_and_check(split, units, process, tallies)
    self._beam_tallies[split] = tallies
    return units_transform(
        list(units), process, tallies,
        metrics_namespace(self.name, self.builder_config.name, split),
        staging_dir=f"{self._staging_dir}/{split}")

  def _process_pipeline_result(self, pipeline_result) -> None:
    super()._process_pipeline_result(pipeline_result)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if tf.io.gfile.exists(self._staging_dir):
      tf.io.gfile.rmtree(self._staging_dir)
    for split, tallies in getattr(self, "_beam_tallies", {}).items():
      states = tally_states_from_metrics(
          pipeline_result,
          metrics_namespace(self.name, self.builder_config.name, split),
          tallies)
      for role, tally in tallies.items():
        tally.restore(states[role])
        tally.report()
      self._check_reports(split, tallies)

  def _generate_and_check(self, split, units, process, tallies):
    yield from generate(units, process, tallies)
    self._check_reports(split, tallies)

  def _check_reports(self, split: str, tallies: Mapping[str, Any]) -> None:
    """Runs after a split's reports, in both kinds of build: a builder may
    raise here (e.g. nothing usable was found); does nothing by default."""
