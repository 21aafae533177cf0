"""Grid augmentations and the TRM token encoding.

Augmentations are the TRM paper's: the 8 dihedral transforms of the square, numbered as in its public
code (0 identity, 1-3 rotations by 90/180/270 degrees counter-clockwise, 4 left-right flip, 5 up-down
flip, 6 transpose, 7 anti-transpose), and permutations of the colours with colour 0 (background)
fixed by default. Every transform has an exact inverse, so a prediction made on an augmented task
maps back to the original frame.

TRM encoding: a grid becomes a 30x30 canvas flattened to 900 tokens, PAD 0, EOS 1, colour c -> c+2.
EOS cells mark the grid's right edge (one column) and bottom edge (one row) so a prediction says
its own size. Training may translate the grid inside the canvas; evaluation keeps it at the top left.
The canvas side is a parameter (30 for ARC) so small experiments can run on e.g. 10x10 canvases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hybrid_pipeline.arc.tasks import MAX_SIDE, NUM_COLOURS, Example, Task
from hybrid_pipeline.arc.wording import plural

PAD, EOS, COLOUR_OFFSET = 0, 1, 2
VOCAB_SIZE = NUM_COLOURS + COLOUR_OFFSET  # 12
SEQ_LEN = MAX_SIDE * MAX_SIDE  # 900

_DIHEDRAL: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    lambda g: g,
    lambda g: np.rot90(g, 1),
    lambda g: np.rot90(g, 2),
    lambda g: np.rot90(g, 3),
    lambda g: np.fliplr(g),
    lambda g: np.flipud(g),
    lambda g: g.T,
    lambda g: np.fliplr(np.rot90(g, 1)),
)
# Rotations invert to the opposite rotation; the four reflections are their own inverses.
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
NUM_DIHEDRAL = len(_DIHEDRAL)


def dihedral(grid: np.ndarray, index: int) -> np.ndarray:
    """Apply dihedral transform `index` (0..7). Returns a contiguous copy."""
    return np.ascontiguousarray(_DIHEDRAL[index](grid))


def inverse_dihedral(grid: np.ndarray, index: int) -> np.ndarray:
    return dihedral(grid, DIHEDRAL_INVERSE[index])


@dataclass(frozen=True)
class Augmentation:
    """A dihedral transform followed by a colour permutation: ``colours[c]`` is the new colour of c.

    `apply` maps the original frame to the augmented one, `invert` maps a grid (e.g. a prediction
    made on the augmented task) back. `to_dict`/`from_dict` record it in datasets.
    """

    dihedral: int = 0
    colours: tuple[int, ...] = tuple(range(NUM_COLOURS))

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < NUM_DIHEDRAL:
            raise ValueError(f"dihedral index {self.dihedral} out of range, expected 0..7")
        if sorted(self.colours) != list(range(NUM_COLOURS)):
            raise ValueError(f"colours {self.colours} is not a permutation of 0..9")

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colours == tuple(range(NUM_COLOURS))

    @property
    def name(self) -> str:
        """Compact id, e.g. ``t3_c0918273645``: one digit per colour."""
        return f"t{self.dihedral}_c{''.join(map(str, self.colours))}"

    def apply(self, grid: np.ndarray) -> np.ndarray:
        return np.asarray(self.colours, dtype=np.uint8)[dihedral(grid, self.dihedral)]

    def invert(self, grid: np.ndarray) -> np.ndarray:
        inverse_colours = np.argsort(self.colours).astype(np.uint8)
        return inverse_dihedral(inverse_colours[grid], self.dihedral)

    def apply_task(self, task: Task) -> Task:
        """The whole task in the augmented frame (every train and test grid, outputs included)."""

        def example(ex: Example) -> Example:
            return Example(self.apply(ex.input), None if ex.output is None else self.apply(ex.output))

        return Task(task.id, tuple(map(example, task.train)), tuple(map(example, task.test)), task.source)

    @classmethod
    def from_name(cls, name: str) -> Augmentation:
        """Inverse of `name`: ``t3_c0918273645`` -> Augmentation(3, (0, 9, 1, ...))."""
        t, _, c = name.partition("_c")
        if not (t.startswith("t") and t[1:].isdigit() and c.isdigit() and len(c) == NUM_COLOURS):
            raise ValueError(f"not an augmentation name: {name!r}, expected like 't3_c0123456789'")
        return cls(int(t[1:]), tuple(int(ch) for ch in c))

    def to_dict(self) -> dict[str, Any]:
        return {"dihedral": self.dihedral, "colours": list(self.colours)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augmentation:
        return cls(int(d["dihedral"]), tuple(int(c) for c in d["colours"]))


IDENTITY = Augmentation()


def random_augmentation(rng: np.random.Generator, *, fix_background: bool = True) -> Augmentation:
    """A uniformly random dihedral transform and colour permutation (colour 0 fixed by default)."""
    if fix_background:
        colours = (0, *(int(c) for c in rng.permutation(np.arange(1, NUM_COLOURS))))
    else:
        colours = tuple(int(c) for c in rng.permutation(NUM_COLOURS))
    return Augmentation(int(rng.integers(NUM_DIHEDRAL)), colours)


def sample_augmentations(n: int, rng: np.random.Generator, *, include_identity: bool = True,
                         fix_background: bool = True) -> list[Augmentation]:
    """`n` distinct augmentations; the identity first when `include_identity`.

    Distinct by construction (there are 8 * 9! of them), which is what the paper's "up to 1000
    augmentations per puzzle" needs: a duplicate would only reweight that view in training and voting.
    """
    out: list[Augmentation] = [IDENTITY] if include_identity and n > 0 else []
    seen = {a.name for a in out}
    while len(out) < n:
        aug = random_augmentation(rng, fix_background=fix_background)
        if aug.name not in seen:
            seen.add(aug.name)
            out.append(aug)
    return out


# --------------------------------------------------------------------------------------------------
# TRM token encoding


def encode_grid(grid: np.ndarray, offset: tuple[int, int] = (0, 0), canvas: int = MAX_SIDE) -> np.ndarray:
    """Grid [h, w] -> tokens [canvas**2] (uint8): colours +2 at `offset` in a PAD canvas, EOS edges.

    The EOS row/column sit just below/right of the grid when they fit inside the canvas.
    """
    h, w = grid.shape
    r, c = offset
    if not (0 <= r and 0 <= c and r + h <= canvas and c + w <= canvas):
        raise ValueError(f"grid {h}x{w} at offset {offset} does not fit in the {canvas}x{canvas} canvas")
    tokens = np.full((canvas, canvas), PAD, dtype=np.uint8)
    tokens[r:r + h, c:c + w] = grid + COLOUR_OFFSET
    if r + h < canvas:
        tokens[r + h, c:c + w] = EOS
    if c + w < canvas:
        tokens[r:r + h, c + w] = EOS
    return tokens.reshape(canvas * canvas)


def random_offset(shapes: list[tuple[int, int]], rng: np.random.Generator, canvas: int = MAX_SIDE) -> tuple[int, int]:
    """A translation that keeps every grid of `shapes` inside the canvas (shared by input and output)."""
    max_h = max(h for h, _ in shapes)
    max_w = max(w for _, w in shapes)
    return int(rng.integers(canvas - max_h + 1)), int(rng.integers(canvas - max_w + 1))


def _square(tokens: np.ndarray) -> np.ndarray:
    """Flat tokens [side**2] -> [side, side]."""
    tokens = np.asarray(tokens)
    side = int(round(np.sqrt(tokens.size)))
    if side * side != tokens.size:
        raise GridDecodeError(f"{tokens.size} tokens is not a square canvas")
    return tokens.reshape(side, side)


class GridDecodeError(ValueError):
    """A predicted token canvas that is not a well-formed grid; the message says why."""


def decode_grid(tokens: np.ndarray) -> np.ndarray:
    """Tokens [side**2] (grid at the top left, as at evaluation) -> grid [h, w], strictly.

    The width is the run of colour tokens in row 0; every following row must repeat that width and
    end with EOS (or the canvas edge); the grid ends at a row that starts with EOS or at the canvas
    edge. Anything else raises GridDecodeError with the first place that is wrong.
    """
    canvas = _square(tokens)
    side = canvas.shape[0]
    is_colour = canvas >= COLOUR_OFFSET
    if canvas.max() >= VOCAB_SIZE:
        raise GridDecodeError(f"token {int(canvas.max())} out of range, expected 0..{VOCAB_SIZE - 1}")
    width = _leading_run(is_colour[0])
    if width == 0:
        raise GridDecodeError(f"row 0 starts with {_token_name(canvas[0, 0])}, expected a colour: empty grid")
    height = 0
    for r in range(side):
        run = _leading_run(is_colour[r])
        if run == 0 and canvas[r, 0] == EOS:
            break
        if run != width:
            raise GridDecodeError(f"row {r} has {plural(run, 'colour cell')}, expected {width} (ragged grid)")
        if width < side and canvas[r, width] != EOS:
            raise GridDecodeError(f"row {r} col {width} is {_token_name(canvas[r, width])}, expected EOS")
        height += 1
    return canvas[:height, :width] - COLOUR_OFFSET


def crop_at_eos(tokens: np.ndarray) -> np.ndarray | None:
    """The TRM evaluator's lenient crop: the largest top-left block of colour cells, None if empty.

    Scanning rows top-down, the usable width shrinks to the colour run of each row; the crop is the
    (rows, width) pair of largest area. This is what the paper's voting uses, so predictions that
    `decode_grid` would reject still get a vote for their best-formed part.
    """
    canvas = _square(tokens)
    is_colour = canvas >= COLOUR_OFFSET
    best, best_shape, width = 0, (0, 0), canvas.shape[1]
    for r in range(canvas.shape[0]):
        width = min(width, _leading_run(is_colour[r]))
        if width == 0:
            break
        if (r + 1) * width > best:
            best, best_shape = (r + 1) * width, (r + 1, width)
    if best == 0:
        return None
    h, w = best_shape
    return (canvas[:h, :w] - COLOUR_OFFSET).astype(np.uint8)


def _leading_run(mask_row: np.ndarray) -> int:
    """Number of leading True values."""
    falses = np.flatnonzero(~mask_row)
    return int(falses[0]) if falses.size else len(mask_row)


def _token_name(token: int) -> str:
    return {PAD: "PAD", EOS: "EOS"}.get(int(token), f"colour {int(token) - COLOUR_OFFSET}")
