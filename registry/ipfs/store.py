"""IPFS storage as the rest of modelreg sees it: the embedded blockstore or a Kubo daemon, one interface.

    ipfs = open_ipfs(home)                 # embedded, under home.ipfs
    ipfs = open_ipfs(home, api=url)        # a Kubo daemon; CIDs still computed (and checked) here
    cid = ipfs.add(path)                   # a file or a directory, pinned; Kubo's CID
    ipfs.cat(f"{cid}/config.json")         # a path inside a directory
"""

import os
from typing import Protocol

from modelreg.home import Home, HomeLike
from modelreg.ipfs import directory, unixfs
from modelreg.ipfs.embedded import EmbeddedIpfs


class Ipfs(Protocol):
    """What both backends offer. CIDs are strings in Kubo's bases (Qm... for v0, b... for v1)."""

    profile: unixfs.Profile

    def add(self, path: str | os.PathLike, pin: bool = True, *, follow_symlinks: bool = False,
            open_file: directory.OpenFile | None = None) -> str: ...
    def add_bytes(self, data: bytes, pin: bool = True) -> str: ...
    def cid_of(self, path: str | os.PathLike, *, follow_symlinks: bool = False,
               open_file: directory.OpenFile | None = None) -> str: ...
    def get(self, cid: str, out_path: str | os.PathLike) -> None: ...
    def cat(self, cid: str) -> bytes: ...
    def ls(self, cid: str) -> list[directory.Entry]: ...
    def pin(self, cid: str) -> None: ...
    def unpin(self, cid: str) -> None: ...
    def pins(self) -> list[str]: ...
    def gc(self) -> int: ...
    def export_car(self, cid: str, path: str | os.PathLike) -> None: ...
    def import_car(self, path: str | os.PathLike) -> list[str]: ...


def open_ipfs(home: HomeLike, api: str | None = None,
              profile: str = unixfs.DEFAULT_PROFILE, *, timeout: float = 120,
              cache_bytes: int | None = None) -> Ipfs:
    """The embedded store under `home`, or the Kubo daemon at `api` (a URL, a multiaddr or its
    IPFS_PATH directory) when one is given: each call to it within `timeout` seconds, content
    fetched from it cached unpinned under `home` up to `cache_bytes`."""
    chosen = unixfs.profile_named(profile)
    if api:
        from modelreg.ipfs.kubo import DEFAULT_CACHE_BYTES, KuboIpfs

        cache = DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes
        return KuboIpfs(api, home, chosen, timeout=timeout, cache_bytes=cache)
    return EmbeddedIpfs(home, chosen)


def clear_cache(ipfs: Ipfs) -> int:
    """Drop content kept only because it was fetched: a Kubo client's local cache, or the
    embedded store's unpinned blocks. Returns how many blocks went."""
    clear = getattr(ipfs, "clear_cache", None)
    return clear() if clear else ipfs.gc()


def describe_node(ipfs: Ipfs, home: HomeLike) -> str:
    """The IPFS node a reader's checks went through, in words: Kubo with its version and peer ID
    and where it was reached, or the embedded store."""
    describe = getattr(ipfs, "describe", None)
    return describe() if describe else f"the embedded IPFS store in {Home.of(home).ipfs}"
