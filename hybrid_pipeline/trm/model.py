"""Tiny Recursive Model (arXiv 2510.04871): one 2-layer network applied recursively to two latents.

The network refines a latent "reasoning" state z_L from the question x and the current answer
state z_H, then refines z_H from z_L. A forward call is one *supervision step*: H_cycles rounds of
(L_cycles z_L updates, one z_H update), only the last round with grad. The carry (z_H, z_L) is
detached and handed to the next step, which is how the paper trains deep recursion cheaply.
Halting (ACT) is a Q head on the first prefix slot of z_H.

Shapes: B batch, L grid cells (seq_len, 900 for ARC), P puzzle-embedding prefix slots (16),
S = P + L, D hidden, V vocab. Weights stay in the caller's dtype; activations run in
`config.forward_dtype` (bf16 in the paper), with norms in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hybrid_pipeline.trm.config import TRMConfig, swiglu_width

WEIGHTS_NAME = "model.safetensors"


def trunc_normal_(tensor: torch.Tensor, std: float, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Truncated normal whose *actual* std is `std` (JAX/flax convention; torch's version is narrower).

    Samples by inverse CDF between `lower` and `upper` standard deviations, then rescales to
    compensate for the variance the truncation removes.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        a, b = math.erf(lower / math.sqrt(2)), math.erf(upper / math.sqrt(2))
        z = (b - a) / 2
        pdf_lower = math.exp(-0.5 * lower**2) / math.sqrt(2 * math.pi)
        pdf_upper = math.exp(-0.5 * upper**2) / math.sqrt(2 * math.pi)
        variance = 1 - (upper * pdf_upper - lower * pdf_lower) / z - ((pdf_upper - pdf_lower) / z) ** 2
        std = std / math.sqrt(variance)
        tensor.uniform_(a, b).erfinv_().mul_(math.sqrt(2) * std).clamp_(lower * std, upper * std)
    return tensor


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Weightless RMSNorm over the last dim, computed in float32 so bf16 runs stay stable."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


class CastedLinear(nn.Module):
    """Linear layer whose weight is cast to the input's dtype: fp32 master weights, bf16 matmuls."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class SwiGLU(nn.Module):
    def __init__(self, width: int, expansion: float):
        super().__init__()
        inner = swiglu_width(width, expansion)
        self.gate_up = CastedLinear(width, 2 * inner)
        self.down = CastedLinear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, nh, S, hs); cos/sin (S, hs) in float32, so positions keep full precision under bf16."""
    dtype = x.dtype
    x = x.to(cos.dtype)
    return (x * cos + rotate_half(x) * sin).to(dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with a fused qkv projection and no biases."""

    def __init__(self, config: TRMConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = CastedLinear(config.hidden_size, 3 * config.hidden_size)
        self.proj = CastedLinear(config.hidden_size, config.hidden_size)

    def forward(self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, S, D = h.shape
        nh = self.num_heads
        qkv = self.qkv(h).view(B, S, 3 * nh, D // nh)  # heads ordered q..., k..., v...
        q, k, v = qkv.transpose(1, 2).split(nh, dim=1)  # each (B, nh, S, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # (B, nh, S, hs)
        return self.proj(y.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    """Post-norm block: mix across positions (attention, or an MLP over the sequence), then a SwiGLU."""

    def __init__(self, config: TRMConfig):
        super().__init__()
        self.eps = config.rms_norm_eps
        if config.mixer == "attention":
            self.attn = Attention(config)
        else:
            self.token_mlp = SwiGLU(config.total_len, config.expansion)
        self.mlp = SwiGLU(config.hidden_size, config.expansion)

    def forward(self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if hasattr(self, "attn"):
            h = rms_norm(h + self.attn(h, rope), self.eps)
        else:
            # the reference normalises over positions here, not channels: kept for weight compatibility
            t = h.transpose(1, 2)  # (B, D, S)
            h = rms_norm(t + self.token_mlp(t), self.eps).transpose(1, 2)  # (B, S, D)
        return rms_norm(h + self.mlp(h), self.eps)


class Reasoner(nn.Module):
    """The tiny network: `net(z, injection)` = blocks(z + injection)."""

    def __init__(self, config: TRMConfig):
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(config.L_layers))

    def forward(self, z: torch.Tensor, injection: torch.Tensor, rope) -> torch.Tensor:
        h = z + injection
        for layer in self.layers:
            h = layer(h, rope)
        return h


class PuzzleEmbedding(nn.Module):
    """Per-puzzle vectors, trained sparsely by `SparseSignSGD` rather than by the dense optimiser.

    The table is a buffer (the dense optimiser, EMA and parameter counts never see it). In training
    with grad enabled, the rows of the batch are gathered into a fresh leaf tensor `rows` that
    collects the gradient; `ids` records which table rows they came from.
    """

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_embeddings, dim))  # zero init, as the paper
        self.rows: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight[ids]  # (B, dim), a copy
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)
            self.rows, self.ids = rows, ids
        return rows


@dataclass
class TRMCarry:
    """State between supervision steps. `halted` rows take new data from the next batch and restart."""

    z_H: torch.Tensor  # (B, S, D) detached
    z_L: torch.Tensor  # (B, S, D) detached
    steps: torch.Tensor  # (B,) int32, supervision steps taken by the current sequence
    halted: torch.Tensor  # (B,) bool
    current_data: dict[str, torch.Tensor]  # batch rows each sequence is working on (labels included)


class TRM(nn.Module):
    def __init__(self, config: TRMConfig):
        super().__init__()
        self.config = config
        D, P = config.hidden_size, config.prefix_len
        self.forward_dtype = getattr(torch, config.forward_dtype)
        self.embed_scale = math.sqrt(D)

        self.embed_tokens = nn.Embedding(config.vocab_size, D, _weight=trunc_normal_(torch.empty(config.vocab_size, D), D**-0.5))
        if config.pos_encodings == "learned":
            self.embed_pos = nn.Embedding(config.total_len, D, _weight=trunc_normal_(torch.empty(config.total_len, D), D**-0.5))
        if config.pos_encodings == "rope":
            hs = D // config.num_heads
            inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)
            freqs = torch.outer(torch.arange(config.total_len, dtype=torch.float32), inv_freq)
            angles = torch.cat((freqs, freqs), dim=-1)  # (S, hs), half-split layout
            self.register_buffer("rope_cos", angles.cos(), persistent=False)
            self.register_buffer("rope_sin", angles.sin(), persistent=False)
        self.puzzle_emb = PuzzleEmbedding(config.num_puzzle_identifiers, config.puzzle_emb_ndim) if config.puzzle_emb_ndim else None

        self.net = Reasoner(config)
        self.h_net = Reasoner(config) if config.separate_h_level else None

        self.lm_head = CastedLinear(D, config.vocab_size)
        # two outputs (halt, continue) keep reference checkpoints loadable; only halt is used and trained
        self.q_head = CastedLinear(D, 2, bias=True)
        with torch.no_grad():  # start near "never halt" so early training does not stop at step 1
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

        # fixed (untrained) starting latents, broadcast to every position
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), std=1.0))
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), std=1.0))
        self._prefix_len = P

    # ---- inputs -------------------------------------------------------------------------------

    def input_embeddings(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) + puzzle ids (B,) -> x (B, S, D): puzzle vector in the prefix slots, then cells."""
        cfg, dt = self.config, self.forward_dtype
        B, P, D = inputs.shape[0], self._prefix_len, cfg.hidden_size
        x = F.embedding(inputs.long(), self.embed_tokens.weight.to(dt))  # (B, L, D)
        if P:
            if self.puzzle_emb is not None:
                prefix = self.puzzle_emb(puzzle_identifiers.long()).to(dt)  # (B, ndim)
                prefix = F.pad(prefix, (0, P * D - prefix.shape[-1]))  # zero-pad into the P slots
            else:
                prefix = x.new_zeros(B, P * D)
            x = torch.cat((prefix.view(B, P, D), x), dim=1)  # (B, S, D)
        if cfg.pos_encodings == "learned":
            x = math.sqrt(0.5) * (x + self.embed_pos.weight.to(dt))  # keeps the sum's variance at 1
        return self.embed_scale * x

    def _full_length(self, t: torch.Tensor, name: str, prefix: torch.Tensor) -> torch.Tensor:
        """(B, L, D) or (B, S, D) -> (B, S, D) in the forward dtype; L-long inputs get `prefix` (D,) in the slots."""
        cfg = self.config
        if t.ndim != 3 or t.shape[1] not in (cfg.seq_len, cfg.total_len) or t.shape[2] != cfg.hidden_size:
            raise ValueError(f"{name} must have shape (B, {cfg.seq_len}, {cfg.hidden_size}) or "
                             f"(B, {cfg.total_len}, {cfg.hidden_size}), got {tuple(t.shape)}")
        t = t.to(self.forward_dtype)
        if t.shape[1] == cfg.seq_len and self._prefix_len:
            slots = prefix.to(t.dtype).expand(t.shape[0], self._prefix_len, -1)
            t = torch.cat((slots, t), dim=1)
        return t

    # ---- recursion ----------------------------------------------------------------------------

    def latent_recursion(self, z_H, z_L, x, rope):
        """L_cycles updates of z_L from (z_H + x), then one update of z_H from z_L."""
        for _ in range(self.config.L_cycles):
            z_L = self.net(z_L, z_H + x, rope)
        z_H = (self.h_net or self.net)(z_H, z_L, rope)
        return z_H, z_L

    def deep_recursion(self, z_H, z_L, x, rope):
        """H_cycles - 1 rounds without grad (cheap thinking), then one round with grad."""
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                z_H, z_L = self.latent_recursion(z_H, z_L, x, rope)
        return self.latent_recursion(z_H, z_L, x, rope)

    # ---- ACT step -----------------------------------------------------------------------------

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> TRMCarry:
        """A carry where every sequence is halted, so the first call loads `batch` and resets.

        The latents are replaced on that first call, so they are a zero broadcast to (B, S, D): a
        view of one element, which costs neither memory nor a fill.
        """
        inputs = batch["inputs"]
        B, device = inputs.shape[0], inputs.device
        shape = (B, self.config.total_len, self.config.hidden_size)
        zero = torch.zeros((), dtype=self.forward_dtype, device=device)
        return TRMCarry(
            z_H=zero.expand(shape),
            z_L=zero.expand(shape),
            steps=torch.zeros(B, dtype=torch.int32, device=device),
            halted=torch.ones(B, dtype=torch.bool, device=device),
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(
        self,
        carry: TRMCarry,
        batch: dict[str, torch.Tensor],
        *,
        init_z_H: torch.Tensor | None = None,
        init_z_L: torch.Tensor | None = None,
        conditioning: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[TRMCarry, dict[str, torch.Tensor]]:
        """One supervision step for every sequence.

        batch: `inputs` (B, L) long, `puzzle_identifiers` (B,) long, plus anything else the caller
        wants carried (e.g. `labels`); rows are read only for sequences that halted last step.
        init_z_H / init_z_L: (B, L, D) or (B, S, D) starting latents, applied after the reset to the
            sequences that restart now (prefix slots keep H_init / L_init for L-long inputs).
        conditioning: (B, L, D) or (B, S, D), added to the input injection of every z_L update,
            including the last round that has grad, so whatever produced it gets a gradient.
            Row i must describe `carry.current_data` row i after this step's reset, so sequences
            that continue need the same batch rows as before (checked on `inputs`).
        generator: for the exploration draw in training.

        Returns the new carry (detached) and outputs: `logits` (B, L, V), `q_halt_logits` (B,)
        float32, `z_H` / `z_L` (B, S, D) final latents with grad, `halted` (B,), `steps` (B,).
        """
        cfg, dt = self.config, self.forward_dtype
        reset = carry.halted  # (B,)
        if conditioning is not None and not reset.all():
            keep = ~reset
            if not torch.equal(batch["inputs"][keep], carry.current_data["inputs"][keep]):
                raise ValueError("conditioning is aligned with batch rows, but some sequences continue from an "
                                 "earlier batch with different inputs; pass the same batch until they halt")

        # restart halted sequences: learned-free initial latents, step counter 0, new data
        r3 = reset.view(-1, 1, 1)
        z_H = torch.where(r3, self.H_init.to(dt), carry.z_H)  # (B, S, D)
        z_L = torch.where(r3, self.L_init.to(dt), carry.z_L)
        if init_z_H is not None:
            z_H = torch.where(r3, self._full_length(init_z_H, "init_z_H", self.H_init), z_H)
        if init_z_L is not None:
            z_L = torch.where(r3, self._full_length(init_z_L, "init_z_L", self.L_init), z_L)
        steps = torch.where(reset, 0, carry.steps)
        data = {k: torch.where(reset.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v) for k, v in carry.current_data.items()}

        x = self.input_embeddings(data["inputs"], data["puzzle_identifiers"])  # (B, S, D)
        if conditioning is not None:
            c = self._full_length(conditioning, "conditioning", conditioning.new_zeros(cfg.hidden_size))
            x = x + c
        rope = (self.rope_cos, self.rope_sin) if cfg.pos_encodings == "rope" else None
        z_H, z_L = self.deep_recursion(z_H, z_L, x, rope)

        logits = self.lm_head(z_H)[:, self._prefix_len:]  # (B, L, V)
        q_halt = self.q_head(z_H[:, 0]).float()[:, 0]  # (B,)

        with torch.no_grad():
            steps = steps + 1
            halted = steps >= cfg.halt_max_steps
            # evaluation always runs halt_max_steps, so every sequence in a batch halts together
            if self.training and cfg.halt_max_steps > 1:
                halted = halted | (q_halt > 0)
                explore = torch.rand(q_halt.shape, generator=generator, device=q_halt.device) < cfg.halt_exploration_prob
                min_steps = torch.randint(2, cfg.halt_max_steps + 1, steps.shape, generator=generator, device=steps.device)
                halted = halted & (steps >= explore * min_steps)

        new_carry = TRMCarry(z_H=z_H.detach(), z_L=z_L.detach(), steps=steps, halted=halted, current_data=data)
        outputs = {"logits": logits, "q_halt_logits": q_halt, "z_H": z_H, "z_L": z_L, "halted": halted, "steps": steps}
        return new_carry, outputs

    # ---- persistence --------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        self.config.save_pretrained(directory)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None) -> "TRM":
        from safetensors.torch import load_file

        config = TRMConfig.from_pretrained(directory)
        path = Path(directory) / WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no TRM weights in {directory}")
        model = cls(config)
        model.load_state_dict(load_file(str(path)))
        return model.to(device=device, dtype=dtype)
