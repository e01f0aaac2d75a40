"""A training run whose every checkpoint is registered: dataset first, then model, then versions.

Nothing is registered until the run is known to be able to register: a preflight (chain and IPFS
answering, the signer funded and allowed to commit to the model) runs beside the data and model
setup, and the dataset and model are registered only once the data is verified and tokenized into
at least one batch. A bad dataset or a refused signer therefore leaves no trace on the chain, in
IPFS or on disk. After that, the trainer's checkpoint hook hands each checkpoint to the registrar's
background worker and returns at once, so training never waits on hashing, IPFS or the chain; if
a registration fails, training stops at the next checkpoint (or, with keep_training, goes on and
journals every checkpoint for a later resume).
"""

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelreg.errors import (
    AccessDenied,
    ChainUnavailable,
    InputInvalid,
    InsufficientFunds,
    ModelNotFound,
    ModelregError,
)
from modelreg.records import Commit
from modelreg.service.commit import code_revision_of
from modelreg.service.journal import Journal
from modelreg.service.registrar import Registrar
from modelreg.training.checkpoint import saved_checkpoints
from modelreg.training.config import TrainConfig
from modelreg.training.data import seal_and_load
from modelreg.training.trainer import train

RUN_FILE = "run.json"
# Gas for registering a model and committing one version (about 86k for a commit); a signer that
# cannot pay this much at the current gas price is refused before training starts.
PREFLIGHT_GAS = 400_000


def train_unregistered(config: TrainConfig, data_dir: Path, run_dir: Path, *, resume: bool,
                       device: str | None = None) -> None:
    """A torchrun rank other than 0: train on the same verified data; rank 0 alone registers."""
    train(config, data_dir, run_dir, dataset=seal_and_load(data_dir),
          resume=resume, device=device)


def preflight(registry, model_name: str) -> None:
    """Read-only checks that registering will work: the chain and IPFS answer, the signer can pay,
    and it owns or maintains the model if the model exists. Sends nothing and writes nothing."""
    client = registry.client
    client.head()  # raises ChainUnavailable if the node stopped answering
    registry.ipfs.pins()  # a Kubo daemon that does not answer raises IpfsUnavailable here
    account = client.signer.address
    balance, price = client.balance(account), client.gas_price()
    if balance < PREFLIGHT_GAS * price:
        raise InsufficientFunds(f"the signer {account} holds {balance} wei on chain {client.chain_id}, "
                                f"less than the {PREFLIGHT_GAS * price} wei that registering a checkpoint "
                                "may cost at the current gas price; fund it or use another key")
    try:
        model = client.get_model(client.model_id(model_name))
    except ModelNotFound:
        return  # registered by this run, and owned by its signer
    if model.owner.lower() != account.lower() and not client.is_maintainer(model.model_id, account):
        raise AccessDenied(f"the signer {account} is neither the owner ({model.owner}) nor a maintainer of "
                           f"model {model_name!r}, so none of its checkpoints could be committed; ask the "
                           "owner to add it as a maintainer, or choose another model name")


def trainer_revision() -> str:
    """The revision of modelreg's trainer: its git commit when run from a checkout, else its version."""
    from importlib.metadata import version

    return code_revision_of(Path(__file__).resolve().parent) or f"modelreg {version('modelreg')} (no git checkout)"


class TrainingRun:
    """One `train-and-register`: the run directory, its journal, the registrar and the training call."""

    def __init__(self, registry, *, model_name: str, data_dir: Path, run_dir: Path, config: TrainConfig,
                 resume: bool, quiet: bool = False, keep_training: bool = False, dp: dict | None = None,
                 code_revision: str | None = None):
        """code_revision is recorded in every version; by default the trainer's (`trainer_revision`):
        here modelreg's own training code is the code that trains."""
        self.registry, self.model_name, self.config, self.dp = registry, model_name, config, dp
        self.code_revision = code_revision if code_revision is not None else trainer_revision()
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.resume, self.quiet, self.keep_training = resume, quiet, keep_training
        self.model_id: int | None = None
        self.dataset_root: str | None = None
        self.stopped_at: int | None = None  # the step training stopped at after a failed registration

    def execute(self, device: str | None = None) -> list[Commit]:
        dataset = seal_and_load(self.data_dir)  # sealed once: training gets these very bytes
        manifest = dataset.manifest
        self.dataset_root = dataset.root
        with ThreadPoolExecutor(1, thread_name_prefix="preflight") as pool:
            checks = pool.submit(preflight, self.registry, self.model_name)  # beside the data and model setup
            fresh = self._check_run_dir()
            journal = Journal(self.run_dir / "journal.jsonl")
            registrar: Registrar | None = None
            with self._progress() as progress:
                steps = progress.add_task("training", total=self.config.max_steps)
                commits = progress.add_task("registered", total=None)

                def before_first_step():
                    nonlocal registrar
                    checks.result()  # the preflight's error, if any, stops the run here
                    registrar = Registrar(client=self.registry.client, ipfs=self.registry.ipfs, journal=journal,
                                          model_name=self.model_name, model_id=None,
                                          dataset_root=self.dataset_root, prepare=lambda: self._register(manifest),
                                          on_commit=lambda c: progress.advance(commits),
                                          on_error=lambda e: self._report(progress, e),
                                          on_reorg=lambda r: print(
                                              f"step {r['step']}: re-committed after a reorg, now in block "
                                              f"{r['block']}", file=sys.stderr, flush=True),
                                          # On a chain that can reorg, the run ends once every commit is final.
                                          wait_final=self.registry.client.ops.watches,
                                          code_revision=self.code_revision)
                    if self.resume:
                        registrar.recover(saved_checkpoints(self.run_dir))

                def on_checkpoint(event):
                    registrar.submit(event)  # journaled first: a refused one stays pending for --resume
                    progress.update(steps, completed=event.step)
                    if registrar.error is not None and not self.keep_training:
                        self.stopped_at = event.step
                        raise registrar.error

                try:
                    train(self.config, self.data_dir, self.run_dir, dataset=dataset,
                          dataset_root=self.dataset_root, on_checkpoint=on_checkpoint, resume=self.resume,
                          device=device, before_first_step=before_first_step, dp=self.dp,
                          token_cache_dir=self.registry.home.token_cache)
                except BaseException:
                    if registrar is None and fresh:  # failed before the first step: leave nothing behind
                        self._remove_run_dir(created=fresh == "created")
                    raise
                finally:
                    if registrar is not None:
                        self._close(registrar, journal)
        committed = journal.state().committed  # this call's commits and, on --resume, the earlier ones
        return [Commit.from_dict(committed[s]) for s in sorted(committed)]

    def _register(self, manifest: dict) -> int:
        """On the registrar's worker: pin the dataset manifest, register its root and the model if new."""
        self.registry.register_dataset(manifest)
        metadata = json.dumps({"architecture": "gpt", "config": self.config.to_dict()}, sort_keys=True)
        self.model_id = self.registry.model_id_or_register(self.model_name, metadata)
        return self.model_id

    def _explain(self, e: BaseException) -> str:
        if isinstance(e, ChainUnavailable) and self.registry.embedded_chain_stopped():
            return (f"the embedded devnet of {self.registry.home} stopped during the run ({e}); "
                    "resuming starts it again")
        return str(e)

    def _report(self, progress: Progress, e: BaseException) -> None:
        """Said the moment the worker fails, not when training ends."""
        then = ("training goes on; every checkpoint is journaled for a later resume" if self.keep_training
                else "training stops at the next checkpoint")
        progress.console.print(f"registration failed: {self._explain(e)}; {then}")

    def _close(self, registrar: Registrar, journal: Journal) -> None:
        try:
            registrar.close()
        except ModelregError as e:
            pending = len(journal.state().pending_steps())
            where = f"training stopped at step {self.stopped_at}; " if self.stopped_at is not None else ""
            error = type(e)(f"{self._explain(e)} ({where}{pending} checkpoint(s) are saved but not "
                            "registered; once that is fixed, resume the run to register them)")
            error.pending = pending
            raise error from None

    def _check_run_dir(self) -> str | None:
        """A run directory belongs to one model and dataset; an old one is only continued on purpose.
        "created" or "emptied" when this call made it or found it empty (so a run that fails before
        its first step can leave it as it was), None when it continues a run."""
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
            return None
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if any(self.run_dir.iterdir()):
            raise InputInvalid(f"{self.run_dir} is not empty and holds no run; choose another --run-dir")
        run_file.write_text(json.dumps(identity, sort_keys=True), encoding="utf-8")
        return "created" if created else "emptied"

    def _remove_run_dir(self, created: bool) -> None:
        if created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        for child in self.run_dir.iterdir():  # it was empty: empty it again, keep the user's directory
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _progress(self) -> Progress:
        return Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), disable=self.quiet, transient=False)
