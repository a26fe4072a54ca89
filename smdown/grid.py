"""Grids: the coarse grid of the input and the nested scales that subdivide it exactly.

Pure functions on numpy arrays and affine transforms; no file I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

# EASE-Grid 2.0 global 9 km (SMAP L4), EPSG:6933.
EASE2_CRS = "EPSG:6933"
EASE2_9KM_RES = 9008.055210146
EASE2_9KM_X0 = -17367530.445161372
EASE2_9KM_Y0 = 7314540.830638504


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform (north-up) and shape (rows, cols)."""

    crs: str
    transform: Affine
    height: int
    width: int

    @property
    def res(self) -> float:
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * self.height, left + self.transform.a * self.width, top)

    def window(self, row: int, col: int, height: int, width: int) -> Grid:
        """The sub-grid starting at (row, col)."""
        return Grid(self.crs, self.transform @ Affine.translation(col, row), height, width)


def nest_factor(coarse_res: float, nominal_res: float) -> int:
    """Integer subdivision of the coarse cell for a nominal scale in metres."""
    factor = int(round(coarse_res / nominal_res))
    if factor < 1:
        raise ValueError(f"scale {nominal_res} m is coarser than the coarse grid ({coarse_res:.1f} m)")
    return factor


def nested_grid(coarse: Grid, factor: int) -> Grid:
    """The grid that splits every coarse cell into factor x factor pixels."""
    transform = coarse.transform @ Affine.scale(1.0 / factor)
    return Grid(coarse.crs, transform, coarse.height * factor, coarse.width * factor)


def block_mean(fine: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block over the last two axes, ignoring NaN.

    A block with no finite pixel gives NaN.
    """
    *lead, rows, cols = fine.shape
    if rows % factor or cols % factor:
        raise ValueError(f"shape {rows}x{cols} is not a multiple of factor {factor}")
    blocks = fine.reshape(*lead, rows // factor, factor, cols // factor, factor)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=(-3, -1), dtype=np.float64)
    count = finite.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return np.where(count > 0, mean, np.nan).astype(np.float32)


def block_expand(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Repeat each coarse value over its factor x factor block (inverse of block_mean)."""
    return np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)


def ease2_9km_grid(x: float, y: float, rows: int, cols: int) -> Grid:
    """A rows x cols window of the global EASE-Grid 2.0 9 km grid whose top-left cell holds (x, y) in EPSG:6933."""
    col = int(np.floor((x - EASE2_9KM_X0) / EASE2_9KM_RES))
    row = int(np.floor((EASE2_9KM_Y0 - y) / EASE2_9KM_RES))
    transform = Affine(
        EASE2_9KM_RES, 0.0, EASE2_9KM_X0 + col * EASE2_9KM_RES, 0.0, -EASE2_9KM_RES, EASE2_9KM_Y0 - row * EASE2_9KM_RES
    )
    return Grid(EASE2_CRS, transform, rows, cols)


def cell_blocks(coarse_shape: tuple[int, int], block_cells: int):
    """(coarse row, coarse col, rows, cols) of each block of at most `block_cells` x `block_cells` coarse cells."""
    for r in range(0, coarse_shape[0], block_cells):
        for c in range(0, coarse_shape[1], block_cells):
            yield r, c, min(block_cells, coarse_shape[0] - r), min(block_cells, coarse_shape[1] - c)


@dataclass(frozen=True)
class Tile:
    """A rectangle of whole coarse cells: the unit of the fine-scale jobs a cluster spreads (one job per tile)."""

    row: int
    col: int
    rows: int
    cols: int

    @property
    def name(self) -> str:
        return f"r{self.row}c{self.col}"

    def fine(self, factor: int) -> tuple[int, int, int, int]:
        """(row, col, height, width) of the tile in the pixels of a scale nested `factor` times in the coarse grid."""
        return self.row * factor, self.col * factor, self.rows * factor, self.cols * factor


def tiles(coarse_shape: tuple[int, int], tile_cells: int) -> list[Tile]:
    """The tiles of `tile_cells` x `tile_cells` coarse cells covering a region, row by row (smaller along its far
    edges); 0 for one tile, the whole region."""
    if tile_cells < 0:
        raise ValueError(f"tile_cells must be >= 0, got {tile_cells}")
    side = tile_cells or max(coarse_shape)
    return [Tile(*block) for block in cell_blocks(coarse_shape, side)]
