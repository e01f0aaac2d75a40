"""A script, not a test: a tiny GPT-2 trained by transformers.Trainer with RegistryCallback (torchrun runs it).

    python trainer_run.py HOME OUTPUT_DIR MODEL MAX_STEPS [--resume]
"""

import os
import sys

import torch
from transformers import Trainer, TrainingArguments

from modelreg.integrations.transformers import RegistryCallback
from tests.hf import Tokens, tiny_gpt2


def main(home: str, output_dir: str, model: str, max_steps: int, resume: bool) -> None:
    args = TrainingArguments(output_dir=output_dir, max_steps=max_steps, save_steps=2, logging_steps=1,
                             per_device_train_batch_size=4, learning_rate=1e-3, report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0,
                             ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None)
    callback = RegistryCallback(model, home=home)
    Trainer(model=tiny_gpt2(), args=args, train_dataset=Tokens(), callbacks=[callback]).train(
        resume_from_checkpoint=resume or None)
    if torch.distributed.is_initialized():
        # Leaving gloo's threads to the interpreter's exit can abort a rank ("terminate called without
        # an active exception"), as a training script that ends cleanly would not.
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), "--resume" in sys.argv)
