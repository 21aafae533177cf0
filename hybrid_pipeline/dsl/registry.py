"""The primitive registry: every DSL function the search may call, with how its arguments are chosen.

A primitive is a pure function `fn(grid, *args) -> grid` over uint8 grids of shape [rows, cols]
(sides 1..30, colours 0..9). It never changes its input, and raises `DSLError` when it does not apply
(no object to crop, a split that does not divide the grid). Its literal arguments come one of two ways:

- `options(ctx)`: the argument tuples to enumerate for a task (`ctx` knows the task's colours), or a
  fixed list of tuples; a primitive without arguments has the single option `()`.
- `infer(grids, targets)`: the one argument tuple that turns every demonstration's current grid into
  its output, read off the demonstrations (a colour map, an object key -> colour table), or None.
  The search tries inferred primitives as the last step of a program only. `max_step` keeps a slow
primitive to the first steps of a program. An inferred primitive marked `lookup` reads a table of
the demonstrations' own pieces (whole stencils, whole outputs): it fits almost any demonstrations,
so the search ranks its programs after every other fitting program and keeps looking past them.

`@primitive` registers the function and returns a public wrapper that also accepts a list of rows, so
printed programs run as is (`crop(largest_object(grid))`) on ARC's JSON grids.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

Grid = np.ndarray
Args = tuple
OptionsFn = Callable[["Context"], Sequence[Args]]
InferFn = Callable[[Sequence[Grid], Sequence[Grid]], Args | None]

MAX_SIDE = 30


class DSLError(ValueError):
    """A primitive does not apply to this grid (the search skips that branch)."""


@dataclass(frozen=True)
class Context:
    """What argument enumeration may know about a task: its demonstrations, never its test outputs.

    colours: every colour in a train input or output or a test input, ascending.
    output_colours: colours of the train outputs; new_colours: those in no train input.
    """

    colours: tuple[int, ...] = ()
    input_colours: tuple[int, ...] = ()
    output_colours: tuple[int, ...] = ()
    new_colours: tuple[int, ...] = ()
    output_shapes: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_pairs(cls, inputs: Sequence[Grid], outputs: Sequence[Grid]) -> "Context":
        """`inputs`: every train and test input; `outputs`: the train outputs."""
        ins = set().union(*(np.unique(g).tolist() for g in inputs)) if inputs else set()
        outs = set().union(*(np.unique(g).tolist() for g in outputs)) if outputs else set()
        return cls(colours=tuple(sorted(ins | outs)), input_colours=tuple(sorted(ins)),
                   output_colours=tuple(sorted(outs)), new_colours=tuple(sorted(outs - ins)),
                   output_shapes=tuple(g.shape for g in outputs))


@dataclass(frozen=True)
class Primitive:
    name: str
    fn: Callable[..., Grid]
    options: OptionsFn | None = None
    infer: InferFn | None = None
    doc: str = ""
    # The latest program step it may be (1: only on the input itself); None: any. Keeps the
    # slowest primitives to the first steps, where the training tasks use them.
    max_step: int | None = None
    # An inferred step that keeps the grid's shape: the search tries it only on states whose train
    # grids already have the output shapes (most states do not, and this is checked once per state).
    keeps_shape: bool = False
    # Its inferred argument memorises pieces of the demonstrations (see the module docstring).
    lookup: bool = False

    def arg_options(self, ctx: Context) -> list[Args]:
        if self.infer is not None:
            return []
        if self.options is None:
            return [()]
        found = self.options(ctx) if callable(self.options) else self.options
        return [tuple(a) for a in found]


REGISTRY: dict[str, Primitive] = {}
EXPORTS: dict[str, Callable[..., Grid]] = {}


def as_grid(grid: Any) -> Grid:
    """A uint8 array view of a grid given as an array or a list of rows."""
    array = np.asarray(grid, dtype=np.uint8)
    if array.ndim != 2:
        raise DSLError(f"expected a 2-D grid, got {array.ndim} dimensions")
    return array


def primitive(options: OptionsFn | Sequence[Args] | None = None, *, infer: InferFn | None = None,
              max_step: int | None = None, keeps_shape: bool = False, lookup: bool = False):
    """Register `fn` as a DSL primitive (see the module docstring); returns its public wrapper."""

    def register(fn: Callable[..., Grid]) -> Callable[..., Grid]:
        name = fn.__name__
        if name in REGISTRY:
            raise RuntimeError(f"DSL primitive {name!r} is defined twice")
        if options is not None and infer is not None:
            raise RuntimeError(f"DSL primitive {name!r}: give options or infer, not both")
        if keeps_shape and infer is None:
            raise RuntimeError(f"DSL primitive {name!r}: keeps_shape is for inferred primitives")
        if lookup and infer is None:
            raise RuntimeError(f"DSL primitive {name!r}: lookup is for inferred primitives")
        REGISTRY[name] = Primitive(name, fn, options, infer, (fn.__doc__ or "").strip(), max_step, keeps_shape,
                                   lookup)

        @functools.wraps(fn)
        def public(grid: Any, *args: Any) -> Grid:
            return fn(as_grid(grid), *args)

        EXPORTS[name] = public
        return public

    return register


def colour_options(ctx: Context) -> list[Args]:
    """One option per colour of the task."""
    return [(c,) for c in ctx.colours]


def output_colour_options(ctx: Context) -> list[Args]:
    """One option per colour of the train outputs."""
    return [(c,) for c in ctx.output_colours]


def checked(grid: Any) -> Grid | None:
    """`grid` if it is a valid ARC grid (2-D, sides 1..30, colours 0..9) as uint8, else None."""
    if not isinstance(grid, np.ndarray) or grid.ndim != 2:
        return None
    rows, cols = grid.shape
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        return None
    if grid.dtype != np.uint8:
        if grid.size and (grid.min() < 0 or grid.max() > 9):
            return None
        grid = grid.astype(np.uint8)
    elif grid.size and grid.max() > 9:
        return None
    return grid

