"""A decoder-only Transformer language model (GPT), after karpathy/nanoGPT's model.py.

Pre-LayerNorm blocks of causal self-attention and an MLP, learned positional
embeddings, the token embedding tied to the output head, dropout throughout.
"""

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from modelreg.training.config import TrainConfig


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's cannot drop only the bias)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TrainConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()  # batch, sequence length, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble all heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: TrainConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: TrainConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))  # pre-LN: the residual stream itself is never normalised
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    # The output head shares the token embedding; checkpoints store the shared tensor once, under this name.
    TIED = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying (Press & Wolf, 2017)

        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):  # scaled init of the residual projections (GPT-2)
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters counted once each (the tied embedding is one tensor)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, targets=None):
        t = idx.size(1)  # idx is (B, T)
        if t > self.config.block_size:
            raise ValueError(f"sequence of length {t} exceeds block_size {self.config.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))
        return logits, loss

    def configure_optimizer(self, config: TrainConfig, device_type: str, ieee: bool = False) -> torch.optim.AdamW:
        """AdamW with two groups: weight decay on 2-D tensors (matrices, embeddings), none on gains.

        ieee: on the CPU, `optim.IeeeAdamW`, whose square root is correctly rounded on every CPU
        (portable CPU training, docs/replay.md); otherwise torch's own AdamW.
        """
        params = dict(self.named_parameters())  # named_parameters yields the tied tensor once
        decay = [p for _, p in sorted(params.items()) if p.dim() >= 2]
        no_decay = [p for _, p in sorted(params.items()) if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if ieee and device_type == "cpu":
            from modelreg.training.optim import IeeeAdamW

            return IeeeAdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2))
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2),
                                 fused=device_type == "cuda")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The weights by name, each tied tensor once: what a checkpoint stores."""
        sd = self.state_dict()
        return {k: v for k, v in sd.items() if k not in self.TIED}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load weights stored by `state_tensors`; strict, so a missing or extra name is an error."""
        full = dict(tensors)
        for alias, stored in self.TIED.items():
            full[alias] = tensors[stored]
        self.load_state_dict(full, strict=True)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None):
        """Sample max_new_tokens after the (B, T) prompt idx, feeding each prediction back in."""
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature  # (B, vocab_size)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)  # (B, T+1)
        return idx
