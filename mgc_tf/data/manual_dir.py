"""The `--manual_dir` check of the datasets whose files a user downloads.

TFDS only notices a missing manual folder deep inside the build, after it
has made the dataset's folders and the download folder, and it reports it
as an `AssertionError` traceback. Builders that mix in `ManualDirBuild`
check first, so a build without its files stops before anything is written:
under the `tfds` command with one line on stderr and exit status 2, from
Python with a `ManualDirError` carrying that line and the builder's download
instructions.
"""

import os
import sys
import textwrap
from typing import Optional, Sequence

from etils import epath

# TFDS's own default when --manual_dir is not given.
_DEFAULT_SUBFOLDER = ("downloads", "manual")


class ManualDirError(AssertionError):
  """The manual folder is missing, empty or lacks a required file.

  An `AssertionError` as TFDS's own manual-dir error is, so callers that
  handled that keep working. `line` is the one-line error the `tfds`
  command prints; the message adds the builder's download instructions.
  """

  def __init__(self, line: str, instructions: str = ""):
    instructions = textwrap.dedent(instructions).strip()
    super().__init__(f"{line}\n\n{instructions}" if instructions else line)
    self.line = line


def resolve_manual_dir(data_dir_root: str, download_dir: Optional[str],
                       download_config) -> epath.Path:
  """Where TFDS will look for the manual files, by its own rules.

  Args:
    data_dir_root: the builder's data_dir (the folder holding all datasets).
    download_dir: `download_and_prepare`'s download_dir, or None.
    download_config: its `tfds.download.DownloadConfig`, or None.

  Returns:
    `download_config.manual_dir` when given, else `<download_dir>/manual`,
    else `<data_dir_root>/downloads/manual`; `~` expanded.
  """
  if download_config is not None and download_config.manual_dir:
    return epath.Path(download_config.manual_dir).expanduser()
  if download_dir:
    return epath.Path(download_dir).expanduser() / _DEFAULT_SUBFOLDER[1]
  return epath.Path(data_dir_root).expanduser().joinpath(*_DEFAULT_SUBFOLDER)


def manual_dir_problem(manual_dir: epath.Path,
                       required: Sequence[str] = ()) -> Optional[str]:
  """What is wrong with `manual_dir`, in a few words, or None when usable.

  Args:
    manual_dir: the folder to check.
    required: names (files or folders) that must exist directly inside it.
  """
  if not manual_dir.is_dir():
    return f"the folder {manual_dir} does not exist"
  if not any(manual_dir.iterdir()):
    return f"the folder {manual_dir} is empty"
  missing = [name for name in required if not (manual_dir / name).exists()]
  if missing:
    return f"{manual_dir} lacks {', '.join(missing)}"
  return None


def running_tfds_command() -> bool:
  """True inside the `tfds` command line (console script or module)."""
  program = sys.argv[0] if sys.argv else ""
  return (os.path.basename(program) == "tfds" or program.replace(
      os.sep, "/").endswith("tensorflow_datasets/scripts/cli/main.py"))


def remove_new_empty_folders(folders: Sequence[epath.Path],
                             existed: Sequence[epath.Path]) -> None:
  """Removes each of `folders` (deepest first) that is empty and was not in
  `existed`: what a refused build made and must not leave behind."""
  for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
    if folder not in existed and folder.is_dir() and not any(
        folder.iterdir()):
      folder.rmdir()


class ManualDirBuild:
  """Mixin for a `tfds.core.GeneratorBasedBuilder` built from manual files.

  Put it before the TFDS base class. `MANUAL_FILES` names what must sit
  directly in the manual folder (empty: any non-empty folder passes, and
  the builder's own reader checks the layout).

  The check runs where TFDS makes the download manager, the first step of a
  build that is not a reuse of a built dataset, and before the dataset's
  folders exist; the download folders the manager has just made are
  removed again.
  """

  MANUAL_FILES: Sequence[str] = ()

  def _make_download_manager(self, download_dir, download_config):
    root = epath.Path(self._data_dir_root)
    download_root = epath.Path(download_dir) if download_dir else (
        root / _DEFAULT_SUBFOLDER[0])
    made_by_manager = [root, download_root, download_root / "extracted"]
    if download_config.extract_dir:
      made_by_manager.append(epath.Path(download_config.extract_dir))
    existed = [folder for folder in made_by_manager if folder.exists()]
    dl_manager = super()._make_download_manager(
        download_dir=download_dir, download_config=download_config)
    try:
      # Through the manager, as TFDS (and its builder tests) resolve it.
      manual_dir = epath.Path(dl_manager.manual_dir)
    except AssertionError:
      resolved = resolve_manual_dir(self._data_dir_root, download_dir,
                                    download_config)
      problem = (manual_dir_problem(resolved)
                 or f"TFDS cannot use the folder {resolved}")
    else:
      problem = manual_dir_problem(manual_dir, self.MANUAL_FILES)
    if problem is not None:
      remove_new_empty_folders(made_by_manager, existed)
      self._refuse(problem)
    return dl_manager

  def _refuse(self, problem: str) -> None:
    line = (f"error: {self.name} is built from files you download yourself, "
            f"and {problem}. See docs/datasets/{self.name}.md for where to "
            f"get them and how to lay them out, then run: tfds build "
            f"tfds_builders/{self.name} --data_dir={self._data_dir_root} "
            f"--manual_dir=<the folder with them>")
    if running_tfds_command():
      print(line, file=sys.stderr)
      sys.exit(2)
    raise ManualDirError(line, self.MANUAL_DOWNLOAD_INSTRUCTIONS or "")
