"""Object primitives: connected components picked, cropped, removed, filled, moved and recoloured.

Objects come from `grids.objects` in one of two views, chosen per primitive where it matters:
"multi" (8 neighbours, any non-background colour joins: a whole multicolour shape) and "single"
(4 neighbours, one colour: overlapping rectangles stay apart). The module covers

- selection, cropped to the object's box or kept in place on a cleared grid: the largest, the
  smallest, the one with a colour no other object has, a shape no other has, the most colours,
  the cells of the rarest colour, the inside of the largest rectangular outline;
- removal: the largest object, objects touching the border (or not), single-cell noise;
- boxes and holes: fill each object's bounding box, fill background enclosed by an object,
  surround objects with a ring, paint (or hollow) object interiors;
- motion: cell gravity, rigid object gravity, objects sliding until they touch an anchor colour,
  single cells sliding to the line of their own colour;
- counting: the number of objects as a bar of cells;
- `recolor_objects` (inferred): each object takes the colour a table gives for one of its
  properties (size rank, size, shape, touching the border, holes, ...);
- `stamp_objects` (inferred): each object paints the stencil its (colour, shape) shows in the
  demonstrations around it (a ring, diagonal corners, a new colour for itself);
- `crop_object_by` (inferred): the object a property singles out (the most cells of a colour, the
  only symmetric one), cut to its box.

A selection that is ambiguous (a tie for the largest, two unique colours) raises DSLError rather
than guess, so a program that fits the demonstrations does so for a reason.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np

from hybrid_pipeline.dsl.grids import Obj, background, frozen, label, per_grid
from hybrid_pipeline.dsl.grids import objects as _all_objects
from hybrid_pipeline.dsl.registry import Args, DSLError, Grid, colour_options, primitive

_VIEWS = {"multi": {"diagonal": True, "multicolour": True},
          "single": {"diagonal": False, "multicolour": False}}
_VIEW_OPTIONS = [("multi",), ("single",)]
_DIRECTIONS = ["down", "up", "left", "right"]
# Quarter turns that bring each direction to "down", so one routine serves all four.
_TURNS = {"down": 0, "left": 1, "up": 2, "right": 3}


def objects(grid: Grid, *, diagonal: bool = False, multicolour: bool = False,
            bg: int | None = -2) -> list[Obj]:
    """`grids.objects`, remembered per grid: the search asks for the same grid's objects from
    many primitives, and building every object's mask costs more than labelling."""
    return list(_objects_of(grid.tobytes(), grid.shape, diagonal, multicolour, bg))


@lru_cache(maxsize=2048)
def _objects_of(data: bytes, shape: tuple[int, int], diagonal: bool, multicolour: bool,
                bg: int | None) -> tuple[Obj, ...]:
    grid = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    found = _all_objects(grid, diagonal=diagonal, multicolour=multicolour, bg=bg)
    for o in found:
        o.mask.setflags(write=False)  # shared between calls: nobody may change it
    return tuple(found)


def _objects(grid: Grid, view: str = "multi") -> list[Obj]:
    if view not in _VIEWS:
        raise DSLError(f"unknown object view {view!r}")
    found = objects(grid, **_VIEWS[view])
    if not found:
        raise DSLError("the grid has no objects")
    return found


def _only(chosen: list[Obj], what: str) -> Obj:
    if len(chosen) != 1:
        raise DSLError(f"{len(chosen)} objects are {what}, not exactly one")
    return chosen[0]


def _extreme(found: list[Obj], score: Callable[[Obj], int], what: str) -> Obj:
    best = max(score(o) for o in found)
    return _only([o for o in found if score(o) == best], what)


def _shape_key(grid: Grid, obj: Obj) -> bytes:
    """The object's mask in its box, as bytes with its size: equal for equal shapes anywhere."""
    box = obj.mask[obj.top:obj.bottom, obj.left:obj.right]
    return bytes((obj.height, obj.width)) + np.packbits(box).tobytes()


def _largest(grid: Grid, view: str) -> Obj:
    return _extreme(_objects(grid, view), lambda o: o.size, "the largest")


def _smallest(grid: Grid, view: str) -> Obj:
    return _extreme(_objects(grid, view), lambda o: -o.size, "the smallest")


def _unique_colour(grid: Grid) -> Obj:
    found = _objects(grid, "multi")
    counts = Counter(o.colour for o in found)
    return _only([o for o in found if counts[o.colour] == 1], "of a colour no other object has")


def _unique_shape(grid: Grid) -> Obj:
    # 8 neighbours, one colour: shapes drawn in different colours side by side stay apart.
    found = objects(grid, diagonal=True)
    if len(found) < 3:
        raise DSLError("a shape stands out only among three objects or more")
    keys = [_shape_key(grid, o) for o in found]
    counts = Counter(keys)
    return _only([o for o, k in zip(found, keys) if counts[k] == 1], "of a shape no other has")


def _most_colours(grid: Grid) -> Obj:
    found = _objects(grid, "multi")
    labels, n = label(grid, diagonal=True, multicolour=True, bg=background(grid))
    # Distinct (object, colour) pairs, counted per object, in one pass over the grid.
    pairs = np.unique(labels.ravel() * 10 + grid.ravel())
    colours = np.bincount(pairs // 10, minlength=n + 1)
    return _extreme(found, lambda o: int(colours[labels[o.mask][0]]), "the most colourful")


def _keep(grid: Grid, mask: np.ndarray) -> Grid:
    out = np.full_like(grid, background(grid))
    out[mask] = grid[mask]
    return out


def _clear(grid: Grid, mask: np.ndarray) -> Grid:
    out = grid.copy()
    out[mask] = background(grid)
    return out


# --- selection, cropped ---------------------------------------------------------------------

@primitive(_VIEW_OPTIONS, max_step=2)
def crop_largest_object(grid: Grid, view: str) -> Grid:
    """The largest object cut to its bounding box ("multi": 8-neighbour, any colour; "single").

    >>> crop_largest_object([[1, 0, 0], [0, 2, 2], [0, 2, 0]], "multi").tolist()
    [[1, 0, 0], [0, 2, 2], [0, 2, 0]]
    >>> crop_largest_object([[1, 0, 0], [0, 2, 2], [0, 2, 0]], "single").tolist()
    [[2, 2], [2, 0]]
    """
    return _largest(grid, view).cut(grid, background(grid))


@primitive(_VIEW_OPTIONS)
def crop_smallest_object(grid: Grid, view: str) -> Grid:
    """The smallest object cut to its bounding box.

    >>> crop_smallest_object([[3, 0, 0], [0, 0, 2], [0, 2, 2]], "single").tolist()
    [[3]]
    """
    return _smallest(grid, view).cut(grid, background(grid))


@primitive()
def crop_unique_colour_object(grid: Grid) -> Grid:
    """The one object whose colour no other object has, cut to its box.

    >>> crop_unique_colour_object([[1, 0, 1], [0, 0, 0], [2, 2, 0]]).tolist()
    [[2, 2]]
    """
    return _unique_colour(grid).cut(grid, background(grid))


@primitive(max_step=2)
def crop_unique_shape_object(grid: Grid) -> Grid:
    """The one object whose shape no other object has, cut to its box.

    >>> crop_unique_shape_object([[1, 0, 2], [0, 0, 0], [3, 0, 4], [3, 0, 0]]).tolist()
    [[3], [3]]
    """
    return _unique_shape(grid).cut(grid, background(grid))


@primitive()
def crop_most_colours_object(grid: Grid) -> Grid:
    """The object with the most distinct colours, cut to its box.

    >>> crop_most_colours_object([[1, 0, 0], [0, 0, 2], [0, 0, 3]]).tolist()
    [[2], [3]]
    """
    return _most_colours(grid).cut(grid, background(grid))


@primitive()
def crop_rarest_colour(grid: Grid) -> Grid:
    """The bounding box of every cell of the least frequent non-background colour.

    >>> crop_rarest_colour([[1, 0, 2], [1, 0, 0], [1, 0, 2]]).tolist()
    [[2], [0], [2]]
    """
    counts = np.bincount(grid.ravel(), minlength=10)
    counts[background(grid)] = 0
    present = counts[counts > 0]
    if present.size < 2 or (present == present.min()).sum() != 1:
        raise DSLError("no single rarest colour among two or more")
    rare = grid == int(np.flatnonzero(counts == present.min())[0])
    rows = np.flatnonzero(rare.any(axis=1))
    cols = np.flatnonzero(rare.any(axis=0))
    return grid[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()


# --- selection in place, removal -------------------------------------------------------------

@primitive(_VIEW_OPTIONS)
def keep_largest_object(grid: Grid, view: str) -> Grid:
    """Only the largest object stays in place; every other cell becomes background.

    >>> keep_largest_object([[1, 0, 0], [0, 0, 2], [0, 2, 2]], "multi").tolist()
    [[0, 0, 0], [0, 0, 2], [0, 2, 2]]
    """
    return _keep(grid, _largest(grid, view).mask)


@primitive()
def remove_largest_object(grid: Grid) -> Grid:
    """The largest object (8-neighbour, any colour) becomes background.

    >>> remove_largest_object([[1, 0, 0], [0, 0, 2], [0, 2, 2]]).tolist()
    [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    """
    return _clear(grid, _largest(grid, "multi").mask)


def _border_mask(grid: Grid) -> np.ndarray:
    """Cells of objects (8-neighbour, any colour) that touch the grid's edge."""
    rows, cols = grid.shape
    mask = np.zeros(grid.shape, dtype=bool)
    for o in _objects(grid, "multi"):
        if o.top == 0 or o.left == 0 or o.bottom == rows or o.right == cols:
            mask |= o.mask
    return mask


@primitive(max_step=2)
def keep_border_objects(grid: Grid) -> Grid:
    """Only objects touching the grid's edge stay.

    >>> keep_border_objects([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 2]]).tolist()
    [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 2]]
    >>> keep_border_objects([[0, 0, 0], [0, 3, 0], [0, 0, 0], [0, 0, 2]]).tolist()
    [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 2]]
    """
    return _keep(grid, _border_mask(grid))


@primitive()
def remove_border_objects(grid: Grid) -> Grid:
    """Objects touching the grid's edge become background.

    >>> remove_border_objects([[0, 0, 0], [0, 3, 0], [0, 0, 0], [0, 0, 2]]).tolist()
    [[0, 0, 0], [0, 3, 0], [0, 0, 0], [0, 0, 0]]
    """
    return _clear(grid, _border_mask(grid))


@primitive(_VIEW_OPTIONS)
def remove_noise(grid: Grid, view: str) -> Grid:
    """Objects of one cell become background ("multi": 8 neighbours, any colour; "single").

    >>> remove_noise([[1, 0, 0], [0, 0, 2], [0, 0, 2]], "multi").tolist()
    [[0, 0, 0], [0, 0, 2], [0, 0, 2]]
    >>> remove_noise([[1, 0, 0], [0, 1, 1], [0, 0, 0]], "single").tolist()
    [[0, 0, 0], [0, 1, 1], [0, 0, 0]]
    """
    if view not in _VIEWS:
        raise DSLError(f"unknown object view {view!r}")
    labels, n = label(grid, **_VIEWS[view], bg=background(grid))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    single = (sizes == 1)[labels]
    if not single.any():
        raise DSLError("no single-cell object to remove")
    return _clear(grid, single)


# --- boxes, holes, rings ----------------------------------------------------------------------

def _holes(obj: Obj, shape: tuple[int, int]) -> np.ndarray:
    """Cells inside the object's box that its cells wall off (4-neighbour) from the box's outside."""
    walls = np.ones((obj.height + 2, obj.width + 2), dtype=np.uint8)
    walls[1:-1, 1:-1] = ~obj.mask[obj.top:obj.bottom, obj.left:obj.right]
    # Label the non-wall cells (value 1; walls are the "background" 0): every component not holding
    # the padded corner is enclosed.
    labels, _ = label(walls, diagonal=False, multicolour=False, bg=0)
    inner = (labels != 0) & (labels != labels[0, 0])
    mask = np.zeros(shape, dtype=bool)
    mask[obj.top:obj.bottom, obj.left:obj.right] = inner[1:-1, 1:-1]
    return mask


@per_grid
def _enclosed(grid: Grid) -> tuple[int, np.ndarray]:
    """The background and the background cells that one object (8-neighbour, one colour) encloses."""
    bg = background(grid)
    enclosed = np.zeros(grid.shape, dtype=bool)
    for o in objects(grid, diagonal=True):
        if o.height > 2 and o.width > 2:
            enclosed |= _holes(o, grid.shape)
    return bg, frozen(enclosed & (grid == bg))


@primitive(colour_options)
def fill_holes(grid: Grid, colour: int) -> Grid:
    """Background cells enclosed by one object (8-neighbour, one colour) take `colour`.

    >>> fill_holes([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], 4).tolist()
    [[1, 1, 1, 0], [1, 4, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    """
    bg, enclosed = _enclosed(grid)
    if not enclosed.any() or colour == bg:
        raise DSLError("no background cell is enclosed by an object")
    out = grid.copy()
    out[enclosed] = colour
    return out


@per_grid
def _in_boxes(grid: Grid) -> tuple[int, np.ndarray]:
    """The background and its cells inside an object's box (8-neighbour, any colour)."""
    bg = background(grid)
    inside = np.zeros(grid.shape, dtype=bool)
    for o in _objects(grid, "multi"):
        inside[o.top:o.bottom, o.left:o.right] = True
    return bg, frozen(inside & (grid == bg))


@primitive(colour_options)
def fill_bboxes(grid: Grid, colour: int) -> Grid:
    """Background cells inside each object's bounding box (8-neighbour, any colour) take `colour`.

    >>> fill_bboxes([[1, 0, 0], [1, 1, 1], [0, 0, 0]], 2).tolist()
    [[1, 2, 2], [1, 1, 1], [0, 0, 0]]
    """
    bg, inside = _in_boxes(grid)
    if not inside.any() or colour == bg:
        raise DSLError("every object already fills its box")
    out = grid.copy()
    out[inside] = colour
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one cell in all 8 directions."""
    padded = np.pad(mask, 1)
    grown = np.zeros_like(padded)
    rows, cols = mask.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown[1:-1, 1:-1] |= padded[dy:dy + rows, dx:dx + cols]
    return grown[1:-1, 1:-1]


@per_grid
def _ring(grid: Grid) -> tuple[int, np.ndarray]:
    """The background and its cells touching an object (8 neighbours)."""
    bg = background(grid)
    filled = grid != bg
    return bg, frozen(_dilate(filled) & ~filled)


@primitive(colour_options, max_step=2)
def surround_objects(grid: Grid, colour: int) -> Grid:
    """Background cells touching an object (8 neighbours) take `colour`: a ring round each object.

    >>> surround_objects([[0, 0, 0], [0, 5, 0], [0, 0, 0]], 1).tolist()
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]]
    """
    bg, ring = _ring(grid)
    if not ring.any() or colour == bg:
        raise DSLError("no background cell touches an object")
    out = grid.copy()
    out[ring] = colour
    return out


@per_grid
def _interior(grid: Grid) -> np.ndarray:
    """Object cells whose 4 neighbours share their colour."""
    padded = np.pad(grid, 1, constant_values=255)
    core = padded[1:-1, 1:-1]
    return frozen((grid != background(grid)) & (padded[:-2, 1:-1] == core) & (padded[2:, 1:-1] == core)
                  & (padded[1:-1, :-2] == core) & (padded[1:-1, 2:] == core))


@primitive(colour_options)
def paint_interiors(grid: Grid, colour: int) -> Grid:
    """Object cells whose 4 neighbours share their colour take `colour` (the background hollows).

    >>> paint_interiors([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], 8)[:3, :3].tolist()
    [[1, 1, 1], [1, 8, 1], [1, 1, 1]]
    """
    inner = _interior(grid) & (grid != colour)
    if not inner.any():
        raise DSLError("no object has an interior to paint")
    out = grid.copy()
    out[inner] = colour
    return out


# --- motion -------------------------------------------------------------------------------------

def _turned(fn: Callable[[Grid], Grid], grid: Grid, direction: str) -> Grid:
    """`fn` written for "down", applied in `direction` by turning the grid there and back."""
    if direction not in _TURNS:
        raise DSLError(f"unknown direction {direction!r}")
    k = _TURNS[direction]
    return np.ascontiguousarray(np.rot90(fn(np.rot90(grid, k)), -k))


def _fall_cells(grid: Grid) -> Grid:
    filled = grid != background(grid)
    # A stable sort of each column by "filled" moves filled cells down and keeps their order.
    order = np.argsort(filled, axis=0, kind="stable")
    return np.take_along_axis(grid, order, axis=0)


@primitive([(d,) for d in _DIRECTIONS], max_step=2)
def gravity(grid: Grid, direction: str) -> Grid:
    """Every non-background cell falls in `direction` until it rests on the edge or another cell.

    >>> gravity([[1, 0], [0, 0], [2, 3]], "down").tolist()
    [[0, 0], [1, 0], [2, 3]]
    """
    out = _turned(_fall_cells, grid, direction)
    if np.array_equal(out, grid):
        raise DSLError("nothing falls")
    return out


def _fall_objects(grid: Grid, labels: np.ndarray, n: int) -> Grid:
    """Objects (`labels` 1..n, turned with `grid` so they fall down) dropped as rigid pieces."""
    rows, cols = grid.shape
    out = np.full_like(grid, background(grid))
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs] - 1
    bottom = np.zeros(n, dtype=np.int64)
    np.maximum.at(bottom, ids, ys + 1)
    first = np.full(n, rows * cols, dtype=np.int64)
    np.minimum.at(first, ids, ys * cols + xs)
    # Each object's cells as one slice of the cells sorted by object.
    by_object = np.argsort(ids, kind="stable")
    ends = np.cumsum(np.bincount(ids, minlength=n))
    # floor[r, c]: the row of the nearest settled cell at or below (r, c), `rows` for the floor
    # (its extra last row). Kept up to date per landed object, so each drop is read off at once
    # instead of stepped; a cell stops above the nearest settled cell strictly below it.
    floor = np.full((rows + 1, cols), rows, dtype=np.int64)
    # Lowest first (ties in reading order), so each object lands on those settled below it.
    for k in np.lexsort((first, -bottom)).tolist():
        cells = by_object[(ends[k - 1] if k else 0):ends[k]]
        oy, ox = ys[cells], xs[cells]
        drop = int((floor[oy + 1, ox] - oy).min()) - 1
        out[oy + drop, ox] = grid[oy, ox]
        landed = np.full(floor.shape, rows, dtype=np.int64)
        landed[oy + drop, ox] = oy + drop
        floor = np.minimum(floor, np.minimum.accumulate(landed[::-1], axis=0)[::-1])
    return out


@primitive([(d,) for d in _DIRECTIONS], max_step=2)
def drop_objects(grid: Grid, direction: str) -> Grid:
    """Each object (8-neighbour, any colour) falls as a rigid piece in `direction` until it lands.

    >>> drop_objects([[1, 1], [0, 1], [0, 0], [0, 0]], "down").tolist()
    [[0, 0], [0, 0], [1, 1], [0, 1]]
    """
    if direction not in _TURNS:
        raise DSLError(f"unknown direction {direction!r}")
    # Labelled once in the grid's own frame (cached, shared by every direction and every "multi"
    # primitive), then turned with the grid: turning does not change what touches what.
    labels, n = label(grid, **_VIEWS["multi"], bg=background(grid))
    if n == 0:
        raise DSLError("the grid has no objects")
    k = _TURNS[direction]
    out = np.ascontiguousarray(np.rot90(_fall_objects(np.rot90(grid, k), np.rot90(labels, k), n), -k))
    if np.array_equal(out, grid):
        raise DSLError("nothing falls")
    return out


def _slide(grid: Grid, anchor: np.ndarray, obj: Obj, blocked: np.ndarray) -> tuple[int, int]:
    """The offset that moves `obj` straight towards `anchor` until it touches it (4 neighbours)."""
    rows = np.flatnonzero(anchor.any(axis=1))
    cols = np.flatnonzero(anchor.any(axis=0))
    if obj.left < cols[-1] + 1 and cols[0] < obj.right:
        step = (1, 0) if rows[0] >= obj.bottom else (-1, 0) if rows[-1] < obj.top else None
    elif obj.top < rows[-1] + 1 and rows[0] < obj.bottom:
        step = (0, 1) if cols[0] >= obj.right else (0, -1) if cols[-1] < obj.left else None
    else:
        step = None
    if step is None:
        raise DSLError("an object is not in line with the anchor")
    ys, xs = np.nonzero(obj.mask)
    height, width = grid.shape
    dy = dx = 0
    while True:
        ny, nx = ys + dy + step[0], xs + dx + step[1]
        if ny.min() < 0 or nx.min() < 0 or ny.max() >= height or nx.max() >= width:
            raise DSLError("an object slides off the grid without touching the anchor")
        if blocked[ny, nx].any():
            return dy, dx
        dy, dx = dy + step[0], dx + step[1]


@primitive(colour_options, max_step=2)
def move_until_contact(grid: Grid, colour: int) -> Grid:
    """Every object not of `colour` slides straight towards the `colour` cells until it touches them.

    >>> move_until_contact([[2, 0, 0, 8]], 8).tolist()
    [[0, 0, 2, 8]]
    """
    bg = background(grid)
    anchor = grid == colour
    if colour == bg or not anchor.any():
        raise DSLError(f"no anchor of colour {colour}")
    movers = [o for o in objects(grid, diagonal=True, multicolour=True, bg=bg)
              if not (o.mask & anchor).any()]
    if not movers:
        raise DSLError("nothing to move")
    out = np.where(anchor, grid, bg).astype(np.uint8)
    blocked = anchor.copy()
    for o in movers:
        dy, dx = _slide(grid, anchor, o, blocked)
        ys, xs = np.nonzero(o.mask)
        out[ys + dy, xs + dx] = grid[ys, xs]
        blocked[ys + dy, xs + dx] = True
    return out


@primitive(max_step=2)
def dots_to_same_colour(grid: Grid) -> Grid:
    """Every single cell slides straight to the larger object of its colour in line with it, until
    it touches it, passing over anything else; a cell with no such object in line vanishes.

    >>> dots_to_same_colour([[0, 0, 0, 3], [3, 0, 0, 3], [0, 0, 4, 3]]).tolist()
    [[0, 0, 0, 3], [0, 0, 3, 3], [0, 0, 0, 3]]
    """
    bg = background(grid)
    found = objects(grid, diagonal=True, bg=bg)
    dots = [o for o in found if o.size == 1]
    anchors = [o for o in found if o.size > 1]
    if not {d.colour for d in dots} & {a.colour for a in anchors}:
        raise DSLError("no single cell with a larger object of its colour to move to")
    out = grid.copy()
    for dot in dots:
        out[dot.top, dot.left] = bg
    for dot in dots:
        for anchor in (a for a in anchors if a.colour == dot.colour):
            try:
                dy, dx = _slide(grid, anchor.mask, dot, anchor.mask)  # over anything else in the way
            except DSLError:
                continue
            out[dot.top + dy, dot.left + dx] = dot.colour
            break
    if np.array_equal(out, grid):
        raise DSLError("nothing moved")
    return out


# --- counting -----------------------------------------------------------------------------------

@primitive()
def count_objects_bar(grid: Grid) -> Grid:
    """A 1 x n row of the objects' colour, n the number of objects (8-neighbour, one colour each).

    >>> count_objects_bar([[1, 0, 1], [0, 0, 0], [1, 0, 0]]).tolist()
    [[1, 1, 1]]
    """
    found = objects(grid, diagonal=True)
    colours = {o.colour for o in found}
    if len(colours) != 1 or len(found) > 30:
        raise DSLError("the objects do not share one colour")
    return np.full((1, len(found)), colours.pop(), dtype=np.uint8)


# --- recolouring by a property (inferred) -------------------------------------------------------

# How `recolor_objects` sees objects: one colour, 8 or 4 neighbours; whole multicolour shapes;
# or the background's own regions (rooms between walls).
_KINDS = ("8", "4", "multi", "regions")
# Properties, in the order inference tries them: the first one consistent everywhere wins.
_KEYS = ("size_extreme", "lone", "size_rank", "size", "unique_shape", "shape", "border", "holes",
         "height", "width", "square")


def _kind_objects(grid: Grid, kind: str) -> list[Obj]:
    bg = background(grid)
    if kind == "8":
        return objects(grid, diagonal=True, bg=bg)
    if kind == "4":
        return objects(grid, bg=bg)
    if kind == "multi":
        return objects(grid, diagonal=True, multicolour=True, bg=bg)
    if kind == "regions":
        return [o for o in objects(grid, bg=None) if o.colour == bg]
    raise DSLError(f"unknown object kind {kind!r}")


def _shape_int(obj: Obj) -> int:
    """The object's shape as an int (a printable literal): its box's sides, then its mask bits."""
    box = obj.mask[obj.top:obj.bottom, obj.left:obj.right]
    # The bits "1" + mask, read as one binary number (packbits pads the last byte with zeros).
    flat = np.concatenate(([True], box.ravel()))
    bits = int.from_bytes(np.packbits(flat).tobytes(), "big") >> (-flat.size % 8)
    return (bits * 31 + obj.height) * 31 + obj.width


def _keys(grid: Grid, found: list[Obj], key: str) -> list[int]:
    sizes = [o.size for o in found]
    if key == "size_extreme":
        # 1 the largest, -1 the smallest, 0 the rest (ties share a mark).
        big, small = max(sizes), min(sizes)
        return [1 if s == big else -1 if s == small else 0 for s in sizes]
    if key == "lone":
        return [int(s == 1) for s in sizes]
    if key == "size_rank":
        ranks = sorted(set(sizes), reverse=True)
        return [ranks.index(s) for s in sizes]
    if key == "size":
        return sizes
    if key == "shape":
        return [_shape_int(o) for o in found]
    if key == "unique_shape":
        shapes = [_shape_int(o) for o in found]
        counts = Counter(shapes)
        return [int(counts[k] == 1) for k in shapes]
    if key == "border":
        rows, cols = grid.shape
        return [int(o.top == 0 or o.left == 0 or o.bottom == rows or o.right == cols) for o in found]
    if key == "holes":
        return [int(_holes(o, grid.shape).any()) for o in found]
    if key == "height":
        return [o.height for o in found]
    if key == "width":
        return [o.width for o in found]
    if key == "square":
        return [int(o.height == o.width and o.size == o.height * o.width) for o in found]
    name, _, value = key.partition("=")
    if name == "size" and value.isdigit():
        return [int(s == int(value)) for s in sizes]
    if name == "touches" and value.isdigit() and int(value) <= 9:
        return _near_colours(grid, found)[:, int(value)].astype(int).tolist()
    raise DSLError(f"unknown object key {key!r}")


def _near_colours(grid: Grid, found: list[Obj]) -> np.ndarray:
    """[objects, 10] bool: which colours lie next to each object (4 neighbours, its own cells
    left out), in one pass over the grid."""
    owner = np.zeros(grid.shape, dtype=np.int64)
    for k, o in enumerate(found):
        owner[o.mask] = k + 1
    near = np.zeros((len(found) + 1, 10), dtype=bool)
    pairs = ((np.s_[1:, :], np.s_[:-1, :]), (np.s_[:, 1:], np.s_[:, :-1]))
    for one, other in pairs:
        for a, b in ((one, other), (other, one)):
            apart = owner[a] != owner[b]
            near[owner[a][apart], grid[b][apart]] = True
    return near[1:]


def _marked_keys(grids: Sequence[Grid], found: list[list[Obj]]) -> list[str]:
    """The yes/no keys worth trying after `_KEYS`: "size=N" for each size of the first
    demonstration's objects, "touches=C" for each colour of every demonstration."""
    sizes = sorted({o.size for o in found[0]})
    colours = sorted(set.intersection(*(set(np.unique(g).tolist()) for g in grids)))
    return [f"size={n}" for n in sizes] + [f"touches={c}" for c in colours]


# Keys with open-ended values: a table over them generalises only if each value recurs.
_OPEN_KEYS = {"size_rank", "size", "shape", "height", "width"}


def _object_colours(target: Grid, found: list[Obj]) -> list[int] | None:
    """The one colour each object has in `target`, or None if some object is painted two ways."""
    colours = []
    for o in found:
        got = np.unique(target[o.mask])
        if got.size != 1:
            return None
        colours.append(int(got[0]))
    return colours


def _key_table(keys_per_pair: Iterable[list[int]], colours: list[list[int]], *,
               yes_no: bool) -> tuple[dict[int, int], Counter] | None:
    """key -> colour over every demonstration (`keys_per_pair`: each pair's object keys, read
    lazily), and how many demonstrations showed each key, or None when two objects of one key take
    two colours, or a `yes_no` key ("size=N", "touches=C") tells no two objects of one
    demonstration apart."""
    table: dict[int, int] = {}
    seen: Counter = Counter()
    splits = False
    for keys, cols in zip(keys_per_pair, colours):
        if any(table.setdefault(k, c) != c for k, c in zip(keys, cols)):
            return None
        seen.update(set(keys))
        splits |= len(set(keys)) > 1
    return None if yes_no and not splits else (table, seen)


def _recurs(key: str, seen: Counter, pairs: int) -> bool:
    """Whether every value of an open-ended key was seen in two demonstrations (one if only one)."""
    return key not in _OPEN_KEYS or min(seen.values()) >= min(2, pairs)


def _infer_recolor(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    if any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    if all(np.array_equal(g, t) for g, t in zip(grids, targets)):
        return None  # nothing to recolour: the program is already done without this step
    # Objects are background regions ("regions") or foreground ones (every other kind), so the
    # cells that change are all background or all foreground: checked before finding any object.
    changes = set()
    for g, t in zip(grids, targets):
        changed = g != t
        on_background = g == background(g)
        changes.update(("bg",) * bool((changed & on_background).any()) + ("fg",) * bool((changed & ~on_background).any()))
    if len(changes) > 1:
        return None
    for kind in _KINDS:
        if (kind == "regions") != (changes == {"bg"}):
            continue
        found = [_kind_objects(g, kind) for g in grids]
        if any(not f for f in found):
            continue
        # Cells outside every object must already be right: only objects change colour.
        covered = [np.logical_or.reduce([o.mask for o in f]) for f in found]
        if any((g[~c] != t[~c]).any() for g, t, c in zip(grids, targets, covered)):
            continue
        colours = [_object_colours(t, f) for t, f in zip(targets, found)]
        if any(c is None for c in colours):
            continue
        near = None  # each object's neighbouring colours, for every "touches=C" key at once
        for key in _KEYS + tuple(_marked_keys(grids, found)):
            if key.startswith("touches="):
                near = near or [_near_colours(g, f) for g, f in zip(grids, found)]
                keys_per_pair = (n[:, int(key[8:])].astype(int).tolist() for n in near)
            else:
                keys_per_pair = (_keys(g, f, key) for g, f in zip(grids, found))
            fitted = _key_table(keys_per_pair, colours, yes_no="=" in key)
            if fitted is None:
                continue
            table, seen = fitted
            if _recurs(key, seen, len(grids)) and set(table.values()) != {background(grids[0])}:
                return (key, table) if kind == "8" else (key, table, kind)
    return None


@primitive(infer=_infer_recolor, keeps_shape=True)
def recolor_objects(grid: Grid, key: str, table: dict, kind: str = "8") -> Grid:
    """Each object takes the colour `table` gives its `key` (objects of `kind`; see `_KINDS`): one of
    `_KEYS`, or yes (1) / no (0) for "size=N" (the object has N cells) or "touches=C" (a cell of
    colour C is next to one of its cells, diagonals not counted).

    >>> recolor_objects([[5, 0, 5], [0, 0, 5]], "size", {1: 3, 2: 4}).tolist()
    [[3, 0, 4], [0, 0, 4]]
    """
    found = _kind_objects(grid, kind)
    if not found:
        raise DSLError("the grid has no objects")
    out = grid.copy()
    for o, k in zip(found, _keys(grid, found, key)):
        if k not in table:
            raise DSLError(f"no colour for {key} {k}")
        out[o.mask] = table[k]
    return out


# --- stamping a neighbourhood per object (inferred) ---------------------------------------------

# A stencil cell that leaves the grid as it is (a stencil is the object's box grown by one cell).
_KEEP = -1


def _stamp_key(obj: Obj) -> tuple[int, int]:
    return obj.colour, _shape_int(obj)


def _padded(grid: Grid) -> np.ndarray:
    """The grid in a frame of 255 (off the grid), so every object's grown box is a plain slice."""
    out = np.full((grid.shape[0] + 2, grid.shape[1] + 2), 255, dtype=np.int16)
    out[1:-1, 1:-1] = grid
    return out


def _infer_stamp(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    if any(g.shape != t.shape for g, t in zip(grids, targets)):
        return None
    # Necessary and cheap: every changed cell touches (8 neighbours) a non-background cell. Most
    # states fail it at their first changed cell already, so that cell is looked at alone first;
    # then the 3 x 3 dilation, separable (rows, then columns): four ORs.
    some_change = False
    for g, t in zip(grids, targets):
        changed = g != t
        first = int(changed.argmax())
        if not changed.flat[first]:
            continue
        some_change = True
        bg = background(g)
        r, c = divmod(first, g.shape[1])
        if (g[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] == bg).all():
            return None
        filled = np.zeros((g.shape[0] + 2, g.shape[1] + 2), dtype=bool)
        filled[1:-1, 1:-1] = g != bg
        across = filled[:, :-2] | filled[:, 1:-1] | filled[:, 2:]
        if (changed & ~(across[:-2] | across[1:-1] | across[2:])).any():
            return None
    if not some_change:
        return None
    # Per object key, the target's grown box at every occurrence: a cell is a colour if every
    # occurrence shows it there and some occurrence changes it, else kept (a neighbour's stamp
    # may reach it); the search then checks that the stamps reproduce every output.
    seen: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    for g, t in zip(grids, targets):
        pg, pt = _padded(g), _padded(t)
        for o in objects(g, diagonal=True):
            box = (slice(o.top, o.bottom + 2), slice(o.left, o.right + 2))
            seen.setdefault(_stamp_key(o), []).append((pt[box], pg[box]))
    table = {}
    for key, boxes in seen.items():
        # One occurrence fits any stencil, so nothing would confirm it: such a key stamps nothing.
        if len(boxes) < 2 or all(np.array_equal(a, b) for a, b in boxes):
            table[key] = None
            continue
        after = np.stack([a for a, _ in boxes])
        before = np.stack([b for _, b in boxes])
        on_grid = after != 255
        changed = (after != before) & on_grid
        first = np.where(on_grid, after, -1).max(axis=0)  # the colour some occurrence shows there
        agreed = ~(on_grid & (after != first)).any(axis=0)
        stencil = np.where(agreed & changed.any(axis=0), first, _KEEP)
        painted = (stencil != _KEEP).any()
        table[key] = tuple(tuple(int(v) for v in row) for row in stencil) if painted else None
    if all(v is None for v in table.values()):
        return None
    return (table,)


@primitive(infer=_infer_stamp, keeps_shape=True, max_step=2, lookup=True)
def stamp_objects(grid: Grid, table: dict) -> Grid:
    """Around each object (8-neighbour, one colour) paint the stencil `table` gives its (colour,
    shape): its box grown by one cell, -1 leaving a cell as it is; None or no entry: no stencil.

    >>> corners = ((4, -1, 4), (-1, -1, -1), (4, -1, 4))
    >>> stamp_objects([[0, 0, 0], [0, 2, 0], [0, 0, 0]], {(2, 2915): corners}).tolist()
    [[4, 0, 4], [0, 2, 0], [4, 0, 4]]
    """
    rows, cols = grid.shape
    out = grid.copy()
    for o in objects(grid, diagonal=True):
        # An object no demonstration showed (a new colour or shape) is left as it is, like one
        # the demonstrations showed once.
        found = table.get(_stamp_key(o))
        if found is None:
            continue
        stencil = np.array(found, dtype=np.int16)
        top, left = o.top - 1, o.left - 1
        # Clip the stencil to the grid: objects at the border stamp only what fits.
        r0, c0 = max(0, -top), max(0, -left)
        r1 = min(stencil.shape[0], rows - top)
        c1 = min(stencil.shape[1], cols - left)
        part = stencil[r0:r1, c0:c1]
        view = out[top + r0:top + r1, left + c0:left + c1]
        view[part != _KEEP] = part[part != _KEEP]
    return out


# --- cropping the object a property singles out (inferred) --------------------------------------

def _colour_counts(grid: Grid, found: list[Obj]) -> np.ndarray:
    """[objects, 10]: each object's cells of each colour, in one pass over the labels."""
    labels, n = label(grid, **_VIEWS["multi"], bg=background(grid))
    ids = labels.ravel()
    counts = np.bincount(ids * 10 + grid.ravel(), minlength=(n + 1) * 10).reshape(n + 1, 10)[1:]
    if len(found) != n:
        raise DSLError("objects and labels disagree")
    return counts


def _is_symmetric(box: np.ndarray) -> bool:
    return bool(np.array_equal(box, box[:, ::-1]) or np.array_equal(box, box[::-1]))


def _selected(grid: Grid, found: list[Obj], selector: tuple) -> int:
    """The index of the one object `selector` picks: ("most", colour), the most cells of that
    colour; ("symmetric",), the only mirror-symmetric one (left-right or top-bottom); ("holed",),
    the only one with a hole; ("common",), the first copy of the object (colours and shape) that
    occurs most often, when one occurs more often than every other."""
    bg = background(grid)
    if selector[0] == "most":
        if selector[1] == bg:
            raise DSLError("the background is no property of an object")
        counts = _colour_counts(grid, found)[:, selector[1]]
        best = counts.max()
        if best == 0 or (counts == best).sum() != 1:
            raise DSLError(f"no single object has the most cells of colour {selector[1]}")
        return int(counts.argmax())
    if selector[0] == "symmetric":
        picked = [i for i, o in enumerate(found) if _is_symmetric(o.cut(grid, bg))]
        return found.index(_only([found[i] for i in picked], "mirror-symmetric"))
    if selector[0] == "holed":
        picked = [o for o in found if _holes(o, grid.shape).any()]
        return found.index(_only(picked, "holed"))
    if selector[0] == "common":
        keys = [_shape_key(grid, o) + o.cut(grid, bg).tobytes() for o in found]
        counts = Counter(keys).most_common(2)
        if len(counts) < 2 or counts[0][1] == counts[1][1]:
            raise DSLError("no object occurs more often than every other")
        return keys.index(counts[0][0])
    raise DSLError(f"unknown selector {selector!r}")


def _shows(grid: Grid, part: Grid) -> bool:
    """Whether some window of `grid` agrees with every non-background cell of `part`."""
    drawn = part != background(grid)
    ys, xs = np.nonzero(drawn)
    if ys.size == 0:
        return False
    # The grid must hold at least as many cells of each colour as the part draws.
    if (np.bincount(part[ys, xs], minlength=10) > np.bincount(grid.ravel(), minlength=10)).any():
        return False
    rows, cols = grid.shape[0] - part.shape[0] + 1, grid.shape[1] - part.shape[1] + 1
    # Window origins where the first and the last drawn cell agree (few), then every drawn cell
    # checked at those at once.
    oy, ox = np.nonzero((grid[ys[0]:ys[0] + rows, xs[0]:xs[0] + cols] == part[ys[0], xs[0]])
                        & (grid[ys[-1]:ys[-1] + rows, xs[-1]:xs[-1] + cols] == part[ys[-1], xs[-1]]))
    if oy.size == 0:
        return False
    return bool((grid[oy[:, None] + ys, ox[:, None] + xs] == part[ys, xs]).all(axis=1).any())


def _infer_crop_by(grids: Sequence[Grid], targets: Sequence[Grid]) -> Args | None:
    # A crop shrinks: every output fits inside its input, and one at least is smaller.
    if any(t.shape[0] > g.shape[0] or t.shape[1] > g.shape[1] for g, t in zip(grids, targets)):
        return None
    if all(t.shape == g.shape for g, t in zip(grids, targets)):
        return None
    # Necessary and cheaper than finding objects: the output's colours sit somewhere in the input
    # (a cut keeps the object's cells and blanks the rest). Most states fail it in the first pair.
    for g, t in zip(grids, targets):
        if not _shows(g, t):
            return None
    matches, scenes = [], []
    for g, t in zip(grids, targets):
        found = objects(g, diagonal=True, multicolour=True)
        bg = background(g)
        hits = {i for i, o in enumerate(found)
                if (o.height, o.width) == t.shape and np.array_equal(o.cut(g, bg), t)}
        if not hits:
            return None
        matches.append(hits)
        scenes.append((g, found))
    # Some demonstration must tell the right object from a wrong one, or any selector would do.
    if all(len(h) == len(f) for h, (_, f) in zip(matches, scenes)):
        return None
    colours = sorted(set.intersection(*(set(np.unique(t).tolist()) for t in targets)))
    for selector in [*(("most", c) for c in colours), ("symmetric",), ("holed",), ("common",)]:
        try:
            if all(_selected(g, f, selector) in h for (g, f), h in zip(scenes, matches)):
                return (selector,)
        except DSLError:
            continue
    return None


@primitive()
def crop_frame_inside(grid: Grid) -> Grid:
    """The inside of the largest one-colour rectangular outline (4-neighbour, 3x3 at least).

    >>> crop_frame_inside([[1, 0, 0, 0], [0, 2, 2, 2], [0, 2, 7, 2], [0, 2, 2, 2]]).tolist()
    [[7]]
    """
    best = None
    for o in objects(grid):
        if o.height < 3 or o.width < 3 or o.size != 2 * (o.height + o.width) - 4:
            continue
        box = o.mask[o.top:o.bottom, o.left:o.right]
        if box[0].all() and box[-1].all() and box[:, 0].all() and box[:, -1].all():
            if best is None or o.height * o.width > best.height * best.width:
                best = o
    if best is None:
        raise DSLError("no rectangular outline")
    return grid[best.top + 1:best.bottom - 1, best.left + 1:best.right - 1].copy()


@primitive(infer=_infer_crop_by, max_step=2)
def crop_object_by(grid: Grid, selector: tuple) -> Grid:
    """The object (8-neighbour, any colour) `selector` singles out, cut to its box: ("most",
    colour), ("symmetric",), ("holed",) or ("common",); see `_selected`.

    >>> crop_object_by([[1, 2, 0, 1, 1], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0]], ("most", 2)).tolist()
    [[1, 1], [2, 2]]
    """
    found = _objects(grid, "multi")
    return found[_selected(grid, found, tuple(selector))].cut(grid, background(grid))
