"""Programs as data: a chain of primitive calls with literal arguments, innermost first, an
`Overlay` of several chains' grids, or either of those run on the colours-by-rank view of a grid
(`InColourRanks`).

`Program((Step("flip_horizontal"), Step("recolor", ({1: 5},))))` is
`recolor(flip_horizontal(grid), {1: 5})`. A program runs (`program(grid)`), hashes and compares by
its text, and prints as Python that imports the DSL and runs as is:

    >>> import hybrid_pipeline.dsl
    >>> print(Program((Step("flip_horizontal"), Step("recolor", ({1: 5},)))).to_python(), end="")
    from hybrid_pipeline.dsl import flip_horizontal, recolor
    <BLANKLINE>
    <BLANKLINE>
    def transform(grid):
        return recolor(flip_horizontal(grid), {1: 5})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hybrid_pipeline.dsl.registry import REGISTRY, DSLError, Grid, as_grid, checked


@dataclass(frozen=True)
class Step:
    """One call: the primitive's name and its literal arguments after the grid."""

    name: str
    args: tuple = ()

    def call(self, inner: str) -> str:
        return f"{self.name}({', '.join([inner, *map(_literal, self.args)])})"


def _literal(value: Any) -> str:
    """Python source for an argument; dict keys sorted so equal programs print alike."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(map(_literal, value))
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else \
            (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    if isinstance(value, (bool, int, str, float)) or value is None:
        return repr(value)
    if isinstance(value, np.integer):
        return repr(int(value))
    raise TypeError(f"a DSL argument must be a literal, got {type(value).__name__}")


class _Expression:
    """What every kind of program shares: it is its text. Hashes, compares (same kind, same text)
    and prints by it, and `to_python` writes it as a module importing the DSL names it uses."""

    __slots__ = ("_text",)

    def names(self) -> set[str]:
        """The DSL functions the expression calls."""
        raise NotImplementedError

    def expression(self) -> str:
        return self._text

    def to_python(self) -> str:
        """A module defining `transform(grid)`, with the imports it needs."""
        names = sorted(self.names())
        head = f"from hybrid_pipeline.dsl import {', '.join(names)}\n\n\n" if names else ""
        return f"{head}def transform(grid):\n    return {self._text}\n"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text})"

    def __str__(self) -> str:
        return self._text


class Program(_Expression):
    """An immutable chain of steps; the empty program is the identity."""

    __slots__ = ("steps",)

    def __init__(self, steps: tuple[Step, ...] = ()):
        self.steps = tuple(steps)
        for step in self.steps:
            if step.name not in REGISTRY:
                raise KeyError(f"unknown DSL primitive {step.name!r}")
        text = "grid"
        for step in self.steps:
            text = step.call(text)
        self._text = text

    def then(self, step: Step) -> "Program":
        return Program(self.steps + (step,))

    def names(self) -> set[str]:
        return {s.name for s in self.steps}

    def __len__(self) -> int:
        return len(self.steps)

    def __call__(self, grid: Any) -> Grid:
        """Run on one grid; raises DSLError when a step does not apply or gives no valid grid."""
        current = as_grid(grid)
        for step in self.steps:
            result = checked(REGISTRY[step.name].fn(current, *step.args))
            if result is None:
                raise DSLError(f"{step.name} gave no valid grid")
            current = result
        return current


class Overlay(_Expression):
    """Programs whose grids are painted one over another (`compose.overlay`): a tree of depth one.

    `Overlay((Program((Step("flip_horizontal"),)), Program()))` is
    `overlay(flip_horizontal(grid), grid)`. It runs, hashes, compares and prints like a `Program`;
    its length is the steps of its parts plus one for the overlay.
    """

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Program, ...]):
        if len(parts) < 2:
            raise ValueError("an overlay needs at least two programs")
        self.parts = tuple(parts)
        self._text = f"overlay({', '.join(p.expression() for p in self.parts)})"

    def names(self) -> set[str]:
        return set().union(*(p.names() for p in self.parts)) | {"overlay"}

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts) + 1

    def __call__(self, grid: Any) -> Grid:
        from hybrid_pipeline.dsl.compose import overlay

        return overlay(*(part(grid) for part in self.parts))


class InColourRanks(_Expression):
    """A program found on the task's colours-by-rank view (`views`), run in that view of each grid:
    `by_colour_rank(grid, lambda grid: <program>, fixed)`. Runs, hashes, compares and prints like a
    `Program`; its length is the inner program's plus one for the view."""

    __slots__ = ("inner", "fixed")

    def __init__(self, inner: Program | Overlay, fixed: tuple[int, ...] = ()):
        self.inner = inner
        self.fixed = tuple(int(c) for c in fixed)
        self._text = f"by_colour_rank(grid, lambda grid: {inner.expression()}, {_literal(self.fixed)})"

    def names(self) -> set[str]:
        return self.inner.names() | {"by_colour_rank"}

    def __len__(self) -> int:
        return len(self.inner) + 1

    def __call__(self, grid: Any) -> Grid:
        from hybrid_pipeline.dsl.views import by_colour_rank

        return by_colour_rank(grid, self.inner, self.fixed)
