"""The verified dataset: text files read only through their manifest, each checked as it is loaded.

Training starts from a dataset root. The manifest's leaves must hash to its
root (`modelreg-files-v1`; ManifestInvalid otherwise), that root must be the
one expected, and every file it lists must have exactly the size and sha256
its leaf records; a file that differs raises DatasetTampered naming it,
before a single training step runs. Files in the directory that the
manifest does not list are not read at all.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelreg.errors import DatasetInvalid, DatasetTampered, ManifestInvalid
from modelreg.formats.manifest import DATASET_MANIFEST, dataset_manifest, load_sealed
from modelreg.formats.seal import FILES_FORMAT, FileLeaf, SealedDataset, dataset_paths, seal_dataset

# The committed corpus (its README, license and digests sit one level up, outside the dataset).
CORPUS_DIR = Path(__file__).resolve().parent / "corpus" / "shakespeare"


@dataclass(frozen=True)
class DatasetFile:
    """One file as read and checked: its manifest path, size, sha256 and decoded text."""

    path: str
    size: int
    sha256: str
    text: str


@dataclass(frozen=True)
class VerifiedDataset:
    """The files of a dataset whose every byte matched the manifest of `root`."""

    root: str
    manifest: dict  # the modelreg-dataset-manifest-v1 the files were checked against
    files: tuple[DatasetFile, ...]
    format: str = FILES_FORMAT


def seal_directory(data_dir: str | os.PathLike) -> dict:
    """The dataset manifest of every file under data_dir, as it is now."""
    return dataset_manifest(seal_dataset(data_dir))


def _resolve(data_dir: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise DatasetTampered(f"dataset manifest names the path {rel!r}, which leaves the dataset "
                              "directory; manifest paths are relative POSIX paths inside it")
    return data_dir.joinpath(*p.parts)


def seal_and_load(data_dir: str | os.PathLike) -> VerifiedDataset:
    """Seal the dataset in data_dir and keep its text, from one read of each file.

    The bytes hashed into the root are the bytes training reads, so there is no window in which a
    file could change between sealing and training, and nothing is read twice.
    """
    files = {}
    for name, path in dataset_paths(data_dir):
        data = path.read_bytes()
        files[name] = DatasetFile(name, len(data), "0x" + hashlib.sha256(data).hexdigest(), _text(name, data))
    sealed = SealedDataset.of(FileLeaf(f.path, f.size, f.sha256) for f in files.values())
    return VerifiedDataset(sealed.root, dataset_manifest(sealed), tuple(files[leaf.path] for leaf in sealed.leaves))


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetInvalid(f"dataset file {name} is not UTF-8 text ({e}); "
                             "training reads text files only") from None


def _read_checked(data_dir: Path, leaf: FileLeaf) -> DatasetFile:
    path = _resolve(data_dir, leaf.path)
    try:
        data = path.read_bytes()  # hashed and decoded from this one read: no window to swap the file
    except FileNotFoundError:
        raise DatasetTampered(f"dataset file {leaf.path} is listed in the manifest but missing "
                              f"from {data_dir}; restore it or seal the dataset again") from None
    digest = "0x" + hashlib.sha256(data).hexdigest()
    if len(data) != leaf.size or digest != leaf.sha256:
        raise DatasetTampered(
            f"dataset file {leaf.path} does not match its manifest entry: {len(data)} bytes with "
            f"sha256 {digest}, the manifest records {leaf.size} bytes with sha256 {leaf.sha256}; "
            "restore the original file or seal the dataset again"
        )
    return DatasetFile(leaf.path, len(data), digest, _text(leaf.path, data))


def load_dataset(data_dir: str | os.PathLike, manifest: dict | str | os.PathLike,
                 expected_root: str | None = None) -> VerifiedDataset:
    """Read every file the manifest (a dict or a JSON file) lists, each checked against its leaf."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetInvalid(f"dataset directory {data_dir} does not exist or is not a directory")
    manifest, sealed = load_sealed(manifest)  # ManifestInvalid unless its leaves hash to its root
    if not isinstance(sealed, SealedDataset):
        raise ManifestInvalid(f"training needs a {DATASET_MANIFEST}, got a {manifest['manifest']}")
    if expected_root is not None and sealed.root != expected_root.lower():
        raise DatasetTampered(f"dataset manifest has root {sealed.root}, training expects {expected_root}; "
                              "pass the manifest of the dataset that root names")
    files = tuple(_read_checked(data_dir, leaf) for leaf in sealed.leaves)  # sorted by path
    return VerifiedDataset(sealed.root, manifest, files)
