"""Ingest: a model read from disk once, the same bytes sealing it and becoming its IPFS blocks.

    sealed, cid = seal_and_add("checkpoint-500", ipfs)   # pinned only once the seal succeeds

Sealing hashes every tensor (sha256 of its bytes as stored) and every other file; adding to IPFS
hashes every chunk into a block. Reading the model twice for that costs a second pass over the
disk, the dominant cost of a commit when the files are not in the page cache. Here IPFS reads
each file once and every chunk it reads also feeds the file's hasher, on a second thread, so
the two sha256 streams run on two cores.
"""

import os
import queue
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

from modelreg._files import open_regular
from modelreg.formats.model import SealedModel, seal_model
from modelreg.formats.seal import FileHasher, TensorHasher
from modelreg.formats.sources import source_for_name

_DONE = object()


def seal_and_add(path: str | os.PathLike, ipfs, *, follow_symlinks: bool = False,
                 pin: bool = True) -> tuple[SealedModel, str]:
    """Seal the model at `path` (a weights file, safetensors or GGUF, or a directory) and add it to `ipfs`, reading
    each file once; return the seal and the CID.

    The DAG is pinned only after the model sealed without error, so an invalid model leaves
    nothing pinned (its blocks go at the next gc), and the error is `seal_model`'s own.
    """
    path = Path(path)
    hashers: dict[Path, TensorHasher | FileHasher] = {}

    @contextmanager
    def open_file(file: Path):
        with open_regular(file) as f:
            size = os.fstat(f.fileno()).st_size
            if not path.is_dir():  # a lone file: its source told from its name, else its first bytes
                hasher = TensorHasher(size, source_for_name(file.name))
            else:
                source = source_for_name(file.name)
                hasher = TensorHasher(size, source) if source is not None else FileHasher()
            with _Feed(f, hasher) as feed:
                yield feed
            hashers[file] = hasher

    # The embedded store's writer lock keeps gc off the blocks until they are pinned.
    with getattr(ipfs, "writing", nullcontext)():
        cid = ipfs.add(path, pin=False, follow_symlinks=follow_symlinks, open_file=open_file)
        sealed = seal_model(path, follow_symlinks=follow_symlinks,
                            hashed={p: h.result() for p, h in hashers.items()})
        if pin:
            ipfs.pin(cid)
    return sealed, cid


class _Feed:
    """A read-only file whose every `read` also goes, in order, to a hasher on its own thread.

    hashlib releases the GIL on large buffers, so the hasher's sha256 runs beside the block
    hashing of the thread that reads. The queue is bounded: memory stays a few chunks.
    """

    def __init__(self, f, hasher):
        self._f = f
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(hasher,), daemon=True)

    def _run(self, hasher) -> None:
        while (chunk := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    hasher.update(chunk)
                except BaseException as e:  # handed to the reader's thread at close
                    self._error = e

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        if chunk:
            self._queue.put(chunk)
        return chunk

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error
