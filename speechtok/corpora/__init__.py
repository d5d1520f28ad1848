"""Audio corpora as the commands see them: manifests (`manifest.py`), the files a command works on and where
its outputs go (`files.py`), and the items of a list of sources (`items.py`)."""

from .files import Job, check_targets, names_directory, plan, scan
from .items import collect_items
from .manifest import MANIFEST_SUFFIXES, Item, MissingFilesError, read_manifest

__all__ = ["Item", "Job", "MANIFEST_SUFFIXES", "MissingFilesError", "check_targets", "collect_items",
           "names_directory", "plan", "read_manifest", "scan"]
