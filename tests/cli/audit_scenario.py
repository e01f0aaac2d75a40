"""A registry with something to audit, built the way its users build it.

From one data directory: a base model with three versions (real manifests with losses), a
fine-tune in a second model whose parent is base v2 and whose data differs, a revocation whose
reason carries Markdown and HTML characters, a maintainer added and removed, and an ownership
handed over. Commits go through `Registry.commit` (what training uses), without training.
"""

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from modelreg.devnet.accounts import dev_accounts
from modelreg.formats.manifest import canonical_json, dataset_manifest
from modelreg.formats.seal import seal_dataset
from modelreg.records import VersionRef
from modelreg.service.config import load_config
from modelreg.service.connect import connect

REASON = "trained on a *leaked* file | see <issue 7> & `notes`"
ALICE, BOB = (a.address for a in dev_accounts(2))


def _dataset(registry, directory: Path, text: str) -> str:
    directory.mkdir(parents=True)
    (directory / "corpus.txt").write_text(text)
    manifest = dataset_manifest(seal_dataset(directory))
    registry.client.register_dataset(manifest["root"], registry.ipfs.add_bytes(canonical_json(manifest)))
    return manifest["root"]


def _commit(registry, run_dir: Path, name: str, dataset_root: str, steps: list[int],
            parent: VersionRef | None = None) -> list:
    """Commit one small checkpoint per step, each the child of the one before, with losses in its manifest."""
    run_dir.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    commits = []
    for step in steps:
        path = run_dir / f"ckpt-{step:06d}.safetensors"
        save_file({"wte.weight": rng.standard_normal((8, 4), dtype=np.float32)}, str(path))
        loss = 4.0 / (1 + step / 10)
        commits.append(registry.commit(path, name, parent=parent, dataset=dataset_root, step=step,
                                       metrics={"train_loss": loss + 0.1, "val_loss": loss}))
        parent = commits[-1].ref
    return commits


def build(run, work: Path, *conn: str) -> dict:
    """Build the scenario with `run` (a tests.cli.conftest.Modelreg) and connection flags `conn`.

    Returns what an auditor should find: the registry's address and the checkpoint files.
    """
    rpc_url = conn[conn.index("--rpc-url") + 1] if "--rpc-url" in conn else None
    if rpc_url:
        run("deploy", *conn)
    run("model", "register", "base", "--metadata", "the base model", *conn)
    run("model", "register", "tuned", *conn)
    flags = {("chain", "rpc_url"): rpc_url}
    registry = connect(run.home, load_config(run.home, flags=flags), write=True)
    base_data = _dataset(registry, work / "data-base", "to be or not to be\n" * 50)
    tuned_data = _dataset(registry, work / "data-tuned", "now is the winter of our discontent\n" * 50)
    base = _commit(registry, work / "runs" / "base", "base", base_data, [10, 20, 30])
    tuned = _commit(registry, work / "runs" / "tuned", "tuned", tuned_data, [40], parent=VersionRef(1, 2))
    run("model", "revoke", "base", "3", "--reason", REASON, "--replacement", "2", *conn)
    run("model", "add-maintainer", "base", BOB, *conn)
    run("model", "remove-maintainer", "base", BOB, *conn)
    run("model", "transfer", "base", BOB, *conn)
    run("model", "accept", "base", "--dev-account", "1", *conn)
    return {"registry": registry.client.address, "base": base, "tuned": tuned,
            "checkpoint": work / "runs" / "base" / "ckpt-000020.safetensors"}
