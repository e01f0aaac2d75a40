"""The training configuration: one frozen dataclass, recorded whole in every checkpoint, and its presets."""

from dataclasses import asdict, dataclass, fields, replace

from modelreg.errors import ConfigInvalid


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. Two runs with equal configs, data and seed give the same weights (CPU)."""

    # model (GPT-2 names)
    n_layer: int = 4  # depth; 4 blocks already learn word shapes on a 1 MB corpus
    n_head: int = 4  # heads of n_embd // n_head = 32 dimensions each
    n_embd: int = 128  # width; quadratic in cost, the main CPU budget knob
    block_size: int = 64  # context length T in tokens (~250 characters of BPE text)
    vocab_size: int = 1024  # BPE vocabulary trained on the dataset; small so the embedding learns fast
    dropout: float = 0.0  # no dropout for short runs: they underfit, they do not overfit
    bias: bool = False  # no biases in Linear/LayerNorm: a little faster, as good (nanoGPT)

    # optimisation
    batch_size: int = 16  # B sequences per step per process
    max_steps: int = 400  # total optimizer steps; the cosine schedule ends here
    learning_rate: float = 3e-3  # peak lr; small models tolerate a high one
    min_lr: float = 3e-4  # floor of the cosine decay, learning_rate / 10 (Chinchilla)
    warmup_steps: int = 40  # linear warmup: Adam's second moments are noise at first
    weight_decay: float = 0.1  # on 2-D weights (matrices, embeddings) only, never gains or biases
    beta1: float = 0.9
    beta2: float = 0.99  # 0.99 rather than 0.999: few tokens per step, so faster adaptation
    grad_clip: float = 1.0  # clip the global grad norm; 0 disables

    # evaluation and checkpoints
    eval_interval: int = 100  # evaluate and write a checkpoint every this many steps, and at the end
    eval_iters: int = 10  # batches per split for the loss estimate; fixed batches, comparable curves
    val_fraction: float = 0.1  # tail of the token stream held out for validation

    seed: int = 1337  # seeds the init, the batches and dropout; equal seeds, equal weights

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ConfigInvalid(f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}; "
                                "pick n_embd divisible by n_head")
        if self.vocab_size < 257:
            raise ConfigInvalid(f"vocab_size={self.vocab_size} is below 257; a byte-level BPE "
                                "needs 256 byte tokens plus the end-of-text token")
        for name in ("n_layer", "block_size", "batch_size", "max_steps", "eval_interval", "eval_iters"):
            if getattr(self, name) < 1:
                raise ConfigInvalid(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 < self.val_fraction < 1:
            raise ConfigInvalid(f"val_fraction={self.val_fraction} must lie strictly between 0 and 1")

    def to_dict(self) -> dict:
        """Every field by name: what the checkpoint records and `from_dict` reads back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config a checkpoint recorded; unknown fields are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigInvalid(f"unknown training config fields {unknown}; known: {sorted(known)}")
        return cls(**d)


PRESETS: dict[str, TrainConfig] = {
    # About a minute on 2 CPU cores with the committed corpus, 4 checkpoints, the loss falls ~7 -> ~4.5.
    "tiny": TrainConfig(),
    # A GPU run: GPT-2-small-like width on a longer context, dropout since it can overfit 1 MB.
    "small": replace(
        TrainConfig(),
        n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=4096, dropout=0.1,
        batch_size=64, max_steps=5000, learning_rate=1e-3, min_lr=1e-4, warmup_steps=200,
        eval_interval=500, eval_iters=50,
    ),
}


def preset(name: str) -> TrainConfig:
    """The named preset, or a ConfigInvalid naming the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigInvalid(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
