"""Paths read from a manifest or a directory listing: checked once, here, before anything is written.

A stranger writes the manifests and directories an auditor reads, so a path is hostile until it
passes `check_path`: relative POSIX, UTF-8, every segment a plain name (no "", ".", "..", no
backslash, NUL or other control character, no drive letter), within length caps. `check_unique`
refuses a set of paths in which two would land on the same file on some filesystem: equal after
Unicode NFC normalisation and case folding (macOS and Windows fold both), or one a file and the
other a path below it. `inside` resolves a checked path under a directory and refuses it unless the
result is still inside (a symbolic link already there could point out).

    check_paths(["data/a.txt", "data/b.txt"], what="dataset manifest")   # ManifestInvalid if any is unsafe
    dest = inside(data_dir, "data/a.txt")
"""

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from modelreg.errors import ManifestInvalid

MAX_PATH_BYTES = 1024  # well under PATH_MAX (4096) once joined below a data directory
MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux, macOS and Windows
MAX_DEPTH = 64  # segments; a deeper tree is an attack, not a dataset


def _problem(segment: str) -> str | None:
    if segment in ("", ".", ".."):
        return f"has a {segment!r} segment" if segment else "has an empty segment (a leading, trailing or double /)"
    if "\\" in segment:
        return "holds a backslash (a path separator on Windows)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
        return "holds a NUL or another control character"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_name(name, *, what: str = "directory entry") -> str:
    """One path segment (a directory entry's name): ManifestInvalid unless it is a plain file name."""
    if not isinstance(name, str):
        raise ManifestInvalid(f"{what} name {name!r} is not a string")
    _utf8(name, what)
    problem = "holds a /" if "/" in name else _problem(name)
    if problem:
        raise ManifestInvalid(f"{what} name {name!r} {problem}; only plain file names are accepted")
    return name


def check_path(path, *, what: str = "manifest") -> str:
    """`path` if it is a safe relative POSIX path; ManifestInvalid naming the problem otherwise."""
    if not isinstance(path, str):
        raise ManifestInvalid(f"{what} path {path!r} is not a string")
    raw = _utf8(path, what)
    if len(raw) > MAX_PATH_BYTES:
        raise ManifestInvalid(f"{what} path {path[:60]!r}... is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise ManifestInvalid(f"{what} path {path!r} is absolute; paths must be relative")
    segments = path.split("/")
    if len(segments) > MAX_DEPTH:
        raise ManifestInvalid(f"{what} path {path[:60]!r}... is deeper than {MAX_DEPTH} directories")
    if len(segments[0]) == 2 and segments[0][1] == ":" and segments[0][0].isalpha():
        raise ManifestInvalid(f"{what} path {path!r} starts with a drive letter; paths must be relative")
    for segment in segments:
        problem = _problem(segment)
        if problem:
            raise ManifestInvalid(f"{what} path {path!r} {problem}; paths must be relative POSIX paths "
                                  "of plain names")
    return path


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")  # strict: a lone surrogate (undecodable bytes) fails here
    except UnicodeEncodeError:
        raise ManifestInvalid(f"{what} path {text!r} is not valid UTF-8") from None


def fold(path: str) -> str:
    """The key under which two paths would name one file on a case-insensitive, normalising filesystem."""
    return unicodedata.normalize("NFC", path).casefold()


def check_unique(paths: Iterable[str], *, what: str = "manifest") -> None:
    """ManifestInvalid if two paths fold to one, or one is a file and another lies below it."""
    seen: dict[str, str] = {}
    for path in paths:
        key = fold(path)
        if key in seen:
            raise ManifestInvalid(f"{what} lists {seen[key]!r} and {path!r}, which name the same file on a "
                                  "case-insensitive or Unicode-normalising filesystem")
        seen[key] = path
    for key, path in seen.items():
        parts = key.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in seen:
                raise ManifestInvalid(f"{what} lists {seen[prefix]!r} as a file and {path!r} below it")


def check_paths(paths: Iterable[str], *, what: str = "manifest") -> list[str]:
    """check_path of each, then check_unique of all; the paths, in order."""
    checked = [check_path(p, what=what) for p in paths]
    check_unique(checked, what=what)
    return checked


def inside(directory: str | os.PathLike, path: str) -> Path:
    """The destination of the checked relative `path` under `directory`, resolved (links followed);
    ManifestInvalid unless it is inside `directory`."""
    base = Path(directory).resolve()
    dest = (base / check_path(path)).resolve()
    if dest == base or base not in dest.parents:
        raise ManifestInvalid(f"path {path!r} resolves to {dest}, outside {base}")
    return dest
