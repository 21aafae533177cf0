"""A grid DSL for ARC: typed primitives over uint8 grids, programs as data, and a search over them.

Every primitive is importable from here, so a printed program runs as is:

    from hybrid_pipeline.dsl import flip_horizontal, recolor

    def transform(grid):
        return recolor(flip_horizontal(grid), {1: 5})

Modules: `registry` (how primitives are declared), `program` (programs as data), `geometry`,
`colour`, `cells`, `objects`, `structure`, `patterns` (the primitives), `compose` (outputs laid together
from several programs' grids), `views` (a task with its colours renamed by rank), `search`
(compositions that fit the demonstrations). Imports only numpy and `hybrid_pipeline.arc`.
"""

# Importing the primitive modules registers their primitives.
from hybrid_pipeline.dsl import cells, colour, geometry, objects, patterns, structure  # noqa: F401
from hybrid_pipeline.dsl.compose import overlay
from hybrid_pipeline.dsl.program import InColourRanks, Overlay, Program, Step
from hybrid_pipeline.dsl.registry import EXPORTS, REGISTRY, DSLError
from hybrid_pipeline.dsl.views import by_colour_rank

globals().update(EXPORTS)
__all__ = ["Program", "Overlay", "InColourRanks", "Step", "DSLError", "REGISTRY", "overlay", "by_colour_rank",
           *EXPORTS]
