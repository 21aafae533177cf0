"""TRMConfig: the Tiny Recursive Model's hyper-parameters. Defaults are the paper's ARC settings."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.json"

POS_ENCODINGS = ("rope", "learned", "none")
MIXERS = ("attention", "mlp_t")
FORWARD_DTYPES = ("bfloat16", "float16", "float32", "float64")


@dataclass
class TRMConfig:
    """Architecture and ACT settings of one TRM.

    `puzzle_emb_ndim` defaults to `hidden_size` (None means "same as hidden"); 0 disables the
    puzzle-embedding table and leaves the `puzzle_emb_len` prefix slots as zeros.
    `puzzle_emb_len` 0 means ceil(puzzle_emb_ndim / hidden_size) slots, as in the reference.
    """

    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    L_layers: int = 2
    H_cycles: int = 3
    L_cycles: int = 4
    pos_encodings: str = "rope"
    mixer: str = "attention"
    puzzle_emb_len: int = 16
    puzzle_emb_ndim: int | None = None
    num_puzzle_identifiers: int = 1
    vocab_size: int = 12
    seq_len: int = 900
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    forward_dtype: str = "bfloat16"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    separate_h_level: bool = False

    def __post_init__(self) -> None:
        if self.puzzle_emb_ndim is None:
            self.puzzle_emb_ndim = self.hidden_size
        positive = ("hidden_size", "num_heads", "L_layers", "H_cycles", "L_cycles", "vocab_size",
                    "seq_len", "halt_max_steps", "num_puzzle_identifiers")
        for key in positive:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TRMConfig.{key} must be a positive integer, got {value!r}")
        for key in ("puzzle_emb_len", "puzzle_emb_ndim"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TRMConfig.{key} must be a non-negative integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"TRMConfig.num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        if self.pos_encodings == "rope" and (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"TRMConfig.num_heads: head size {self.hidden_size // self.num_heads} must be even for rope")
        if not self.expansion > 0:
            raise ValueError(f"TRMConfig.expansion must be > 0, got {self.expansion!r}")
        if not 0.0 <= self.halt_exploration_prob <= 1.0:
            raise ValueError(f"TRMConfig.halt_exploration_prob must be in [0, 1], got {self.halt_exploration_prob!r}")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"TRMConfig.rms_norm_eps must be > 0, got {self.rms_norm_eps!r}")
        if not self.rope_theta > 0:
            raise ValueError(f"TRMConfig.rope_theta must be > 0, got {self.rope_theta!r}")
        for key, allowed in (("pos_encodings", POS_ENCODINGS), ("mixer", MIXERS), ("forward_dtype", FORWARD_DTYPES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"TRMConfig.{key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")
        if self.puzzle_emb_ndim > self.prefix_len * self.hidden_size:
            raise ValueError(f"TRMConfig.puzzle_emb_ndim ({self.puzzle_emb_ndim}) does not fit in puzzle_emb_len "
                             f"({self.puzzle_emb_len}) slots of hidden_size ({self.hidden_size})")

    @property
    def prefix_len(self) -> int:
        """Number of puzzle-embedding slots in front of the grid cells."""
        if self.puzzle_emb_len:
            return self.puzzle_emb_len
        return -(-self.puzzle_emb_ndim // self.hidden_size)

    @property
    def total_len(self) -> int:
        """Length of the latent sequences z_H / z_L: prefix slots + grid cells."""
        return self.prefix_len + self.seq_len

    @property
    def mlp_inner(self) -> int:
        """Inner width of the channel SwiGLU (1536 at hidden 512)."""
        return swiglu_width(self.hidden_size, self.expansion)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "TRMConfig") -> "TRMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown TRMConfig key(s) {', '.join(unknown)}; "
                             f"known keys are {', '.join(sorted(known))}")
        return cls(**values)

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "TRMConfig":
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no TRM config.json in {directory}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of TRMConfig keys, got {type(values).__name__}")
        return cls.from_dict(values, source=str(path))


def swiglu_width(width: int, expansion: float) -> int:
    """round(expansion * width * 2/3) rounded up to a multiple of 256: keeps checkpoints interchangeable."""
    inner = round(expansion * width * 2 / 3)
    return -(-inner // 256) * 256
