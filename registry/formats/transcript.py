"""Training transcripts: what one checkpoint's stretch of training read and started from, enough to replay it.

A transcript (`modelreg-training-transcript-v1`) rides in a checkpoint manifest
(`modelreg-checkpoint-manifest-v2`), so the manifest CID on-chain binds it. It
names the step range, the seed, the hash of the training config, the numerics
the CPU kernels ran with, the parent's weights root and optimizer-state root,
the CIDs of the dataset's files, and the root of the batch tree.

The batch tree (`modelreg-batches-v1`) is an OpenZeppelin StandardMerkleTree
with one leaf per optimizer step, values `(uint256 step, uint256[] files,
uint256[] offsets, bytes32 tokens)`: sample b of the step is the window that
starts at token offsets[b] of file files[b] (its index among the dataset's
sorted `modelreg-files-v1` leaves), and tokens is the sha256 of all the
batch's windows as little-endian int64 token ids, inputs and the one target
token past them. The leaves travel in a pinned batches document whose root
must match the transcript's.

A DDP run's segment (`modelreg-training-transcript-v3`, v1 plus "world_size", at least 2)
has one leaf per step as well, holding every rank's samples in rank order: rank r's B
samples are entries r*B .. r*B+B-1 of files and offsets, and tokens hashes all W*B windows
in that order. Its replay runs that many ranks.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

from modelreg.errors import ManifestInvalid
from modelreg.formats.merkle import StandardMerkleTree

TRANSCRIPT_FORMAT = "modelreg-training-transcript-v1"
# v2 = v1 + "dp": a DP-SGD segment's parameters, accountant, sampling, seeds, epsilon spent and the
# sha256 of the parameters after each step (training/dp.py). Non-DP segments stay v1.
TRANSCRIPT_FORMAT_DP = "modelreg-training-transcript-v2"
_DP_KEYS = {"mechanism", "target_epsilon", "delta", "max_grad_norm", "noise_multiplier", "sample_rate",
            "planned_steps", "examples", "epsilon_spent", "accountant", "sampling", "example", "sample_seed",
            "noise_seed", "step_params_sha256"}
# v3 = v1 + "world_size": a DDP segment, whose leaves hold every rank's samples (see above).
TRANSCRIPT_FORMAT_DDP = "modelreg-training-transcript-v3"
BATCHES_FORMAT = "modelreg-batches-v1"
_TRANSCRIPT_KEYS = {"format", "first_step", "last_step", "seed", "config_sha256", "batches", "parent",
                    "numerics", "dataset_files"}


@dataclass(frozen=True)
class BatchLeaf:
    """One optimizer step's batch: where each sample starts in the dataset, and the hash of its tokens."""

    TYPES: ClassVar[tuple[str, ...]] = ("uint256", "uint256[]", "uint256[]", "bytes32")

    step: int
    files: tuple[int, ...]
    offsets: tuple[int, ...]
    tokens: str

    def values(self) -> list:
        return [self.step, list(self.files), list(self.offsets), self.tokens]

    def to_dict(self) -> dict:
        return {"step": self.step, "files": list(self.files), "offsets": list(self.offsets),
                "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d) -> "BatchLeaf":
        if not isinstance(d, dict) or set(d) != {"step", "files", "offsets", "tokens"}:
            raise ManifestInvalid(f"batch leaf {d!r} must have exactly the keys files, offsets, step, tokens")
        ints = [d["step"], *d["files"], *d["offsets"]] if isinstance(d["files"], list) and isinstance(
            d["offsets"], list) else None
        if ints is None or not all(_is_count(v) for v in ints) or len(d["files"]) != len(d["offsets"]):
            raise ManifestInvalid(f"batch leaf {d!r}: step, files and offsets must be non-negative integers, "
                                  "files and offsets of equal length")
        if not _is_hash(d["tokens"]):
            raise ManifestInvalid(f"batch leaf of step {d['step']}: tokens must be \"0x\" + 64 hex digits")
        return cls(d["step"], tuple(d["files"]), tuple(d["offsets"]), d["tokens"])


def tokens_sha256(windows: bytes) -> str:
    return "0x" + hashlib.sha256(windows).hexdigest()


def config_sha256(config: dict) -> str:
    """The hash of a training config: sha256 of its canonical JSON."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "0x" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def batches_root(leaves) -> str:
    return StandardMerkleTree.of([leaf.values() for leaf in leaves], BatchLeaf.TYPES).root


def batches_document(leaves) -> dict:
    """The pinned document of a segment's batch leaves, in step order, with their root."""
    ordered = sorted(leaves, key=lambda leaf: leaf.step)
    return {"format": BATCHES_FORMAT, "root": batches_root(ordered), "leaves": [leaf.to_dict() for leaf in ordered]}


def load_batches(document: bytes | dict, expected_root: str) -> tuple[BatchLeaf, ...]:
    """The leaves of a batches document whose leaves hash to expected_root; ManifestInvalid otherwise."""
    try:
        doc = json.loads(document) if isinstance(document, (bytes, str)) else document
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestInvalid(f"batches document is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != BATCHES_FORMAT or not isinstance(doc.get("leaves"), list) \
            or not doc["leaves"]:
        raise ManifestInvalid(f"not a {BATCHES_FORMAT} document with at least one leaf")
    leaves = tuple(BatchLeaf.from_dict(d) for d in doc["leaves"])
    root = batches_root(leaves)
    if root != expected_root:
        raise ManifestInvalid(f"the batch leaves give root {root}, the transcript commits {expected_root}")
    return leaves


def check_transcript(t) -> None:
    """ManifestInvalid unless t has the shape of a `modelreg-training-transcript-v1`."""
    dp = isinstance(t, dict) and t.get("format") == TRANSCRIPT_FORMAT_DP
    ddp = isinstance(t, dict) and t.get("format") == TRANSCRIPT_FORMAT_DDP
    keys = _TRANSCRIPT_KEYS | {"dp"} if dp else _TRANSCRIPT_KEYS | {"world_size"} if ddp else _TRANSCRIPT_KEYS
    if not isinstance(t, dict) or set(t) != keys:
        got = sorted(t) if isinstance(t, dict) else type(t).__name__
        raise ManifestInvalid(f"transcript must have exactly the keys {sorted(keys)}, got {got}")
    if t["format"] not in (TRANSCRIPT_FORMAT, TRANSCRIPT_FORMAT_DP, TRANSCRIPT_FORMAT_DDP):
        raise ManifestInvalid(f"transcript format {t['format']!r} is not {TRANSCRIPT_FORMAT!r}, "
                              f"{TRANSCRIPT_FORMAT_DP!r} or {TRANSCRIPT_FORMAT_DDP!r}")
    if ddp and not (_is_count(t["world_size"]) and t["world_size"] >= 2):
        raise ManifestInvalid(f"transcript world_size {t['world_size']!r} must be an integer of at least 2")
    if dp:
        check_dp(t["dp"], t["last_step"] - t["first_step"] + 1)
    if not all(_is_count(t[k]) for k in ("first_step", "last_step", "seed")) or t["first_step"] > t["last_step"]:
        raise ManifestInvalid("transcript steps and seed must be non-negative integers, first_step <= last_step")
    batches = t["batches"]
    if not (isinstance(batches, dict) and set(batches) == {"root", "count", "cid"} and _is_hash(batches["root"])
            and _is_count(batches["count"]) and isinstance(batches["cid"], str)):
        raise ManifestInvalid(f"transcript batches {batches!r} must be {{\"root\", \"count\", \"cid\"}}")
    parent = t["parent"]
    if parent is not None and not (
            isinstance(parent, dict) and set(parent) == {"step", "weights_root", "optimizer_root"}
            and _is_count(parent["step"]) and _is_hash(parent["weights_root"]) and _is_hash(parent["optimizer_root"])):
        raise ManifestInvalid(f"transcript parent {parent!r} must be null or "
                              "{\"step\", \"weights_root\", \"optimizer_root\"}")
    if not _is_hash(t["config_sha256"]) or not isinstance(t["numerics"], dict) \
            or not isinstance(t["dataset_files"], dict):
        raise ManifestInvalid("transcript config_sha256 must be a hash, numerics and dataset_files objects")


def check_dp(d, steps: int) -> None:
    """ManifestInvalid unless d is a DP-SGD section with one parameter digest per step of the segment."""
    if not isinstance(d, dict) or set(d) != _DP_KEYS:
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ManifestInvalid(f"transcript dp must have exactly the keys {sorted(_DP_KEYS)}, got {got}")
    numbers = ("target_epsilon", "delta", "max_grad_norm", "noise_multiplier", "sample_rate", "epsilon_spent")
    if not all(isinstance(d[k], (int, float)) and not isinstance(d[k], bool) and d[k] >= 0 for k in numbers) \
            or not 0 < d["delta"] < 1 or not 0 < d["sample_rate"] <= 1:
        raise ManifestInvalid(f"transcript dp: {', '.join(numbers)} must be non-negative numbers, "
                              "delta and sample_rate within (0, 1)")
    if not (_is_count(d["planned_steps"]) and _is_count(d["examples"]) and d["mechanism"] == "dp-sgd"
            and isinstance(d["accountant"], dict)):
        raise ManifestInvalid("transcript dp: mechanism must be dp-sgd, planned_steps and examples counts, "
                              "accountant an object")
    digests = d["step_params_sha256"]
    if not isinstance(digests, list) or len(digests) != steps or not all(_is_hash(x) for x in digests):
        raise ManifestInvalid(f"transcript dp: step_params_sha256 must hold one hash per step ({steps})")


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_hash(v) -> bool:
    return isinstance(v, str) and len(v) == 66 and v.startswith("0x") and all(c in "0123456789abcdef" for c in v[2:])
