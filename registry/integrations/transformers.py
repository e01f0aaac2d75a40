"""A `transformers.TrainerCallback` that commits every checkpoint the Trainer saves as a version.

    from modelreg.integrations.transformers import RegistryCallback

    trainer = Trainer(model, args, train_dataset=data,
                      callbacks=[RegistryCallback("my-gpt", dataset="data/")])
    trainer.train()

Each `checkpoint-N/` directory, every file of it (weights, config, tokenizer, optimizer and
scheduler state, trainer state), is sealed, pinned and committed by a background worker while
training goes on (`modelreg.BackgroundCommitter`): its parent is the previous version, its
metrics are the trainer's log history up to step N, its dataset the one given here. Under
torchrun or accelerate only the main process commits. With `save_total_limit` set, `on_save`
waits for the commit, since the Trainer deletes old checkpoints at the next save.

Needs the `hf` extra: `pip install modelreg[hf]`.
"""

import json
import math
import os
from pathlib import Path

from modelreg._extras import require

require("hf", "modelreg.integrations.transformers")  # one ExtraNotInstalled, not a bare ModuleNotFoundError

import transformers  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR  # noqa: E402

from modelreg.records import Commit, VersionRef  # noqa: E402
from modelreg.service.background import BackgroundCommitter  # noqa: E402

JOURNAL = "modelreg-commits.jsonl"  # in the Trainer's output_dir, beside the checkpoint-N/ directories


class RegistryCallback(TrainerCallback):
    """Commit each checkpoint a `transformers.Trainer` saves as the next version of `model`."""

    def __init__(self, model: str, *, dataset=None, parent: VersionRef | None = None, registry=None,
                 journal: str | os.PathLike | None = None, home: str | os.PathLike | None = None,
                 code_revision: str | None = None, **settings):
        """
        Args:
            model: the model's name; registered, with the signer as owner, if new.
            dataset: a dataset directory (sealed and registered) or a registered dataset root.
            parent: the version the first checkpoint was fine-tuned from, or None.
            registry: a connected `Registry`; by default `modelreg.connect(home, **settings)`.
            journal: where commits are journaled; by default OUTPUT_DIR/modelreg-commits.jsonl, so a
                run resumed in the same output directory commits what was left and goes on.
            code_revision: the revision of your training code, recorded in every version; by default
                the git commit of the working tree the Trainer runs in (the current directory), none
                outside a git checkout.
        """
        self.model, self.dataset, self.parent = model, dataset, parent
        self.registry, self.journal, self.home, self.settings = registry, journal, home, settings
        self.code_revision = code_revision
        self.commits: list[Commit] = []
        self._committer: BackgroundCommitter | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        journal = self.journal or Path(args.output_dir) / JOURNAL
        self._committer = BackgroundCommitter(self.model, journal=journal, registry=self.registry,
                                              dataset=self.dataset, parent=self.parent, home=self.home,
                                              code_revision=self.code_revision, **self.settings)

    def on_save(self, args, state, control, **kwargs):
        if self._committer is None:
            return
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        self._committer.submit(checkpoint, step=state.global_step,
                               metrics=logged_metrics(state.log_history, state.global_step),
                               config={"training_args": json.loads(args.to_json_string())},
                               environment=_environment(args))
        if args.save_total_limit is not None:
            self._committer.wait()

    def on_train_end(self, args, state, control, **kwargs):
        if self._committer is not None:
            self.commits = self._committer.close()
            self._committer = None


def logged_metrics(log_history: list[dict], step: int) -> dict:
    """The latest value of every number the Trainer logged up to `step` (loss, eval_loss, learning_rate, ...)."""
    metrics = {}
    for entry in log_history:
        if entry.get("step", 0) > step:
            continue
        for name, value in entry.items():
            if (name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value)):
                metrics[name] = value
    return metrics


def _environment(args) -> dict:
    import torch

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "device": str(args.device), "world_size": args.world_size}
