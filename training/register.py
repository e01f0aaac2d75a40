"""A training run whose every checkpoint is registered: dataset first, then model, then versions.

The trainer's checkpoint hook hands each checkpoint to the registrar's background worker and
returns at once, so training never waits on hashing, IPFS or the chain.
"""

import json
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelreg.errors import InputInvalid, ModelNotFound, ModelregError
from modelreg.formats.manifest import canonical_json, dataset_manifest
from modelreg.formats.seal import seal_dataset
from modelreg.records import Commit
from modelreg.service.journal import Journal
from modelreg.service.registrar import Registrar
from modelreg.training.config import TrainConfig
from modelreg.training.trainer import train

RUN_FILE = "run.json"


def train_unregistered(config: TrainConfig, data_dir: Path, run_dir: Path, *, resume: bool,
                       device: str | None = None) -> None:
    """A torchrun rank other than 0: train on the same verified data; rank 0 alone registers."""
    train(config, data_dir, run_dir, dataset_manifest=dataset_manifest(seal_dataset(data_dir)),
          resume=resume, device=device)


class TrainingRun:
    """One `train-and-register`: the run directory, its journal, the registrar and the training call."""

    def __init__(self, registry, *, model_name: str, data_dir: Path, run_dir: Path, config: TrainConfig,
                 resume: bool, quiet: bool = False):
        self.registry, self.model_name, self.config = registry, model_name, config
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.resume, self.quiet = resume, quiet
        self.model_id: int | None = None
        self.dataset_root: str | None = None

    def execute(self, device: str | None = None) -> list[Commit]:
        sealed = seal_dataset(self.data_dir)  # local: training checks every file against it
        manifest = dataset_manifest(sealed)
        self.dataset_root = sealed.root
        self._check_run_dir()
        journal = Journal(self.run_dir / "journal.jsonl")
        with self._progress() as progress:
            steps = progress.add_task("training", total=self.config.max_steps)
            commits = progress.add_task("registered", total=None)
            registrar = Registrar(client=self.registry.client, ipfs=self.registry.ipfs, journal=journal,
                                  model_name=self.model_name, model_id=None, dataset_root=self.dataset_root,
                                  prepare=lambda: self._register(manifest),
                                  on_commit=lambda c: progress.advance(commits))
            if self.resume:
                registrar.recover(self.run_dir)

            def on_checkpoint(event):
                registrar.submit(event)
                progress.update(steps, completed=event.step)

            try:
                train(self.config, self.data_dir, self.run_dir, dataset_manifest=manifest,
                      dataset_root=self.dataset_root, on_checkpoint=on_checkpoint,
                      resume=self.resume, device=device)
            finally:
                self._close(registrar, journal)
        committed = journal.state().committed  # this call's commits and, on --resume, the earlier ones
        return [Commit.from_dict(committed[s]) for s in sorted(committed)]

    def _register(self, manifest: dict) -> int:
        """On the registrar's worker: pin the dataset manifest, register its root (again is a no-op),
        and the model if it is new; the model's id."""
        cid = self.registry.ipfs.add_bytes(canonical_json(manifest))
        self.registry.client.register_dataset(manifest["root"], cid)
        self.model_id = self._model_id()
        return self.model_id

    def _close(self, registrar: Registrar, journal: Journal) -> None:
        try:
            registrar.close()
        except ModelregError as e:
            pending = len(journal.state().pending_steps())
            raise type(e)(f"{e} ({pending} checkpoint(s) are saved but not registered; once that is fixed, "
                          "run the same command with --resume to register them)") from None

    def _model_id(self) -> int:
        try:
            return self.registry.client.model_id(self.model_name)
        except ModelNotFound:
            metadata = json.dumps({"architecture": "gpt", "config": self.config.to_dict()}, sort_keys=True)
            model_id, _ = self.registry.client.register_model(self.model_name, metadata)
            return model_id

    def _check_run_dir(self) -> None:
        """A run directory belongs to one model and dataset; an old one is only continued on purpose."""
        run_file = self.run_dir / RUN_FILE
        identity = {"model": self.model_name, "dataset_root": self.dataset_root,
                    "chain_id": self.registry.client.chain_id, "contract": self.registry.client.address}
        if run_file.exists():
            recorded = json.loads(run_file.read_text(encoding="utf-8"))
            if not self.resume:
                raise InputInvalid(f"{self.run_dir} holds an earlier run of {recorded['model']}; pass --resume "
                                   "to continue it, or choose another --model or --run-dir")
            if recorded != identity:
                raise InputInvalid(f"{self.run_dir} belongs to another run ({recorded}); "
                                   "choose another --run-dir")
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if any(self.run_dir.iterdir()):
            raise InputInvalid(f"{self.run_dir} is not empty and holds no run; choose another --run-dir")
        run_file.write_text(json.dumps(identity, sort_keys=True), encoding="utf-8")

    def _progress(self) -> Progress:
        return Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), disable=self.quiet, transient=False)
