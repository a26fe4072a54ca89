"""Raster I/O: the one module that reads and writes stacks (rasterio lives here only).

A *stack* is a dated raster cube (days x rows x cols, float32, NaN nodata) with its grid;
band descriptions hold the dates (YYYY-MM-DD). A static raster is a stack of one band
without dates.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

# GDAL's block cache defaults to 5 % of the machine's memory and fills with written blocks, which
# made the prediction's memory grow with the region up to that cap; 256 MB is plenty for our windows.
os.environ.setdefault("GDAL_CACHEMAX", "256")

import rasterio  # noqa: E402
from rasterio import windows
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.warp import transform as transform_points
from rasterio.windows import Window

from smdown.grid import Grid


class InputError(Exception):
    """A bad input: the message names the file or config key and what is wrong."""


@dataclass
class Stack:
    """A raster cube (bands x rows x cols, float32, NaN nodata) on a grid; dates or None (static)."""

    data: np.ndarray
    grid: Grid
    dates: list[str] | None = None

    @property
    def is_static(self) -> bool:
        return self.dates is None


# ---------------------------------------------------------------- reading


def _parse_date(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip()[:10]).isoformat()
    except ValueError:
        return None


def _grid_of(src) -> Grid:
    return Grid(src.crs.to_string(), src.transform, src.height, src.width)


def read_grid(path: str | os.PathLike) -> Grid:
    """The grid of a raster file (checked like read_stack)."""
    with _open(path) as src:
        return _grid_of(src)


def band_count(path: str | os.PathLike) -> int:
    with _open(path) as src:
        return src.count


def read_dates(path: str | os.PathLike) -> list[str]:
    """The band dates of a dynamic raster, checked."""
    with _open(path) as src:
        return _band_dates(src, path)


@contextmanager
def _open(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file not found")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"{path}: not a readable raster ({err})") from err
    with src:
        if src.crs is None:
            raise InputError(f"{path}: raster has no CRS (georeference it, e.g. gdal_edit.py -a_srs EPSG:xxxx)")
        if src.transform.b != 0 or src.transform.d != 0 or src.transform.e >= 0:
            raise InputError(f"{path}: raster is not north-up (rotated or flipped transform)")
        yield src


def _band_dates(src, path) -> list[str]:
    dates = [_parse_date(d) for d in src.descriptions]
    bad = [i + 1 for i, d in enumerate(dates) if d is None]
    if bad:
        raise InputError(
            f"{path}: band descriptions must be dates YYYY-MM-DD for a dynamic raster; "
            f"band(s) {bad[:5]} have {[src.descriptions[i - 1] for i in bad[:5]]}"
        )
    if len(set(dates)) != len(dates):
        raise InputError(f"{path}: band dates are not unique")
    if dates != sorted(dates):
        raise InputError(f"{path}: band dates are not in increasing order")
    return dates


def _as_float(data: np.ndarray, nodata, scale=1.0, offset=0.0) -> np.ndarray:
    """Stored values as float32 with NaN where they are `nodata`; scaled integers (value = stored x scale + offset,
    per band where `scale` and `offset` are arrays of bands x 1 x 1) decoded."""
    missing = data == nodata if nodata is not None and not np.isnan(nodata) else None
    if np.any(np.asarray(scale) != 1.0) or np.any(np.asarray(offset) != 0.0):
        data = (data.astype(np.float64) * scale + offset).astype(np.float32)
    else:
        data = data.astype(np.float32, copy=False)
    if missing is not None:
        data = np.where(missing, np.float32(np.nan), data)
    return data


def _decoded(src, data: np.ndarray, indexes: Sequence[int] | None = None) -> np.ndarray:
    """Bands read from an open raster (all, or the 1-based `indexes`) as float32 stacks: nodata to NaN, scaled
    integers (band scales and offsets, as SMAP's products and the int16 maps of outputs.dtype carry them) decoded."""
    bands = [i - 1 for i in indexes] if indexes is not None else list(range(src.count))
    scale = np.array([src.scales[b] for b in bands], dtype=np.float64)[:, None, None]
    offset = np.array([src.offsets[b] for b in bands], dtype=np.float64)[:, None, None]
    return _as_float(data, src.nodata, scale, offset)


def read_stack(path: str | os.PathLike, static: bool = False) -> Stack:
    """Read a whole raster as a stack; a static raster must have one band."""
    with _open(path) as src:
        if static:
            if src.count != 1:
                raise InputError(f"{path}: a static predictor must have one band, found {src.count}")
            dates = None
        else:
            dates = _band_dates(src, path)
        data = _decoded(src, src.read())
        return Stack(data, _grid_of(src), dates)


def bands_of_dates(path: str | os.PathLike, dates: Sequence[str]) -> list[int] | None:
    """The 0-based bands of a dated raster that hold `dates`, in that order; None for a static raster (one band
    without a date), which holds every day. A missing date is an error naming the file."""
    with _open(path) as src:
        if src.count == 1 and _parse_date(src.descriptions[0]) is None:
            return None
        own = {d: i for i, d in enumerate(_band_dates(src, path))}
    missing = [d for d in dates if d not in own]
    if missing:
        raise InputError(f"{path}: no band for date(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    return [own[d] for d in dates]


def read_window(path: str | os.PathLike, row: int, col: int, height: int, width: int,
                bands: Sequence[int] | None = None) -> np.ndarray:
    """Read a window of a raster on our grids (all bands, or the 0-based `bands`); pixels outside the
    raster are NaN."""
    indexes = None if bands is None else [int(b) + 1 for b in bands]
    with rasterio.open(path) as src:
        window = Window(col, row, width, height)
        inside = row >= 0 and col >= 0 and row + height <= src.height and col + width <= src.width
        if inside:  # a boundless read goes through a VRT: several times slower
            return _decoded(src, src.read(indexes, window=window), indexes)
        integer = not np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        fill = src.nodata if integer and src.nodata is not None else np.nan  # an int16 map's outside: its nodata
        return _decoded(src, src.read(indexes, window=window, boundless=True, fill_value=fill), indexes)


def _footprint(src, grid: Grid) -> Window:
    """The grid's bounds in an open raster's pixel coordinates (fractional, possibly beyond the raster)."""
    bounds = transform_bounds(CRS.from_user_input(grid.crs), src.crs, *grid.bounds, densify_pts=21)
    return windows.from_bounds(*bounds, transform=src.transform)


def read_covering(path: str | os.PathLike, grid: Grid, static: bool = False) -> Stack | None:
    """The part of a raster that a warp onto `grid` reads: the grid's footprint in the raster plus a
    margin for the resampling kernel (which GDAL widens where the warp downsamples); None where the
    raster does not reach the grid."""
    with _open(path) as src:
        footprint = _footprint(src, grid)
        ratio = max(footprint.width / grid.width, footprint.height / grid.height, 1.0)
        margin = int(np.ceil(2 * ratio)) + 2
        row0 = max(int(np.floor(footprint.row_off)) - margin, 0)
        col0 = max(int(np.floor(footprint.col_off)) - margin, 0)
        row1 = min(int(np.ceil(footprint.row_off + footprint.height)) + margin, src.height)
        col1 = min(int(np.ceil(footprint.col_off + footprint.width)) + margin, src.width)
        if row1 <= row0 or col1 <= col0:
            return None
        data = _decoded(src, src.read(window=Window(col0, row0, col1 - col0, row1 - row0)))
        dates = None if static else _band_dates(src, path)
        return Stack(data, _grid_of(src).window(row0, col0, row1 - row0, col1 - col0), dates)


def read_block(path: str, row: int, col: int, height: int, width: int, halo: int, shape: tuple[int, int]) -> np.ndarray:
    """A window plus a halo; beyond the region's edge the edge values are repeated (as in training)."""
    top, left = max(row - halo, 0), max(col - halo, 0)
    bottom, right = min(row + height + halo, shape[0]), min(col + width + halo, shape[1])
    data = read_window(path, top, left, bottom - top, right - left)
    pad = ((0, 0), (top - (row - halo), (row + height + halo) - bottom), (left - (col - halo), (col + width + halo) - right))
    return np.pad(data, pad, mode="edge") if any(p for pair in pad for p in pair) else data


# ---------------------------------------------------------------- writing


# The stored types of a map (config outputs.dtype): float32 with NaN nodata, or int16 scaled as SMAP's products store
# theirs (value = stored x INT16_SCALE + INT16_OFFSET, nodata INT16_NODATA), whose rounding error is at most half a
# step, 5e-5 m3/m3, over the values -3.2768 to 3.2767 (soil moisture and its uncertainties lie within 0 to 1).
DTYPES = ("float32", "int16")
INT16_SCALE, INT16_OFFSET, INT16_NODATA = 1e-4, 0.0, -9999


def encode(data: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Values (NaN nodata) as stored in a raster of `dtype` (DTYPES); a finite value int16 cannot hold (beyond its
    range, or on its nodata) is an error, never clipped."""
    if dtype == "float32":
        return data.astype(np.float32, copy=False)
    if dtype != "int16":
        raise ValueError(f"dtype {dtype!r}: not one of {DTYPES}")
    steps = np.round((data.astype(np.float64) - INT16_OFFSET) / INT16_SCALE)
    finite = np.isfinite(steps)
    limits = np.iinfo(np.int16)
    bad = finite & ((steps < limits.min) | (steps > limits.max) | (steps == INT16_NODATA))
    if bad.any():
        value = float(data[bad].flat[0])
        raise ValueError(f"value {value:g} cannot be stored as int16 x {INT16_SCALE:g} (range "
                         f"{limits.min * INT16_SCALE:g} to {limits.max * INT16_SCALE:g}, nodata "
                         f"{INT16_NODATA * INT16_SCALE:g}): write it as float32")
    return np.where(finite, steps, INT16_NODATA).astype(np.int16)


def _profile(grid: Grid, count: int, dtype: str = "float32") -> dict:
    blocksize = 256 if min(grid.height, grid.width) >= 256 else None
    scaled = dtype == "int16"
    profile = dict(
        driver="GTiff",
        dtype=dtype,
        nodata=INT16_NODATA if scaled else np.nan,
        crs=CRS.from_user_input(grid.crs),
        transform=grid.transform,
        height=grid.height,
        width=grid.width,
        count=count,
        # ZSTD level 1 with the floating-point predictor: files as small as DEFLATE level 1's (itself a quarter of
        # DEFLATE's default time for files a few percent larger) in half its CPU time (GDAL >= 2.3 reads them); the
        # integer (horizontal differencing) predictor for scaled integers
        compress="zstd",
        zstd_level=1,
        predictor=2 if scaled else 3,
        interleave="band",
        BIGTIFF="IF_SAFER",
    )
    if blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    return profile


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` (same extension) to write to; renamed to `path` when the block
    ends without error, removed otherwise, so a reader never sees a half-written file.

    A killed job (SIGKILL, node lost) cannot remove its temporary file, so the temporary files of `path`
    left by earlier writers (`.{stem}.<8 hex>.part{suffix}`, nothing else) are deleted first: the
    rerun that rewrites a target clears what the killed one left of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head, tail = f".{path.stem}.", f".part{path.suffix}"
    for old in path.parent.iterdir():
        tag = old.name[len(head):-len(tail)]
        if (old.name.startswith(head) and old.name.endswith(tail) and len(old.name) == len(head) + 8 + len(tail)
                and all(c in "0123456789abcdef" for c in tag)):
            old.unlink(missing_ok=True)
    tmp = _part_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _part_name(path: Path) -> Path:
    """A new temporary name beside `path` of the form atomic_path clears when it next writes `path`."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.part{path.suffix}")


def _open_profile(path: Path, profile: dict, dates: list[str] | None):
    """Open a raster for writing with `profile`, its band dates and (scaled integers) its bands' scales and offsets."""
    dst = rasterio.open(path, "w", **profile)
    if dates is not None:
        dst.descriptions = tuple(dates)
    if profile["dtype"] == "int16":
        dst.scales = (INT16_SCALE,) * profile["count"]
        dst.offsets = (INT16_OFFSET,) * profile["count"]
    return dst


@contextmanager
def open_writer(path: str | os.PathLike, grid: Grid, dates: list[str] | None, count: int | None = None) -> Iterator:
    """Open a raster for windowed writes under a temporary name; renamed into place on success."""
    count = len(dates) if dates is not None else (count or 1)
    with atomic_path(path) as tmp, _open_profile(tmp, _profile(grid, count), dates) as dst:
        yield dst


def _copy_cog(source: str | os.PathLike, path: str | os.PathLike, profile: dict) -> None:
    """Copy a raster (type, band dates, scales, values unchanged) into a Cloud-Optimized GeoTIFF laid out as
    `profile` says: GDAL's GTiff copy with COPY_SRC_OVERVIEWS puts the image directories ahead of the blocks, and the
    blocks in order, as rio-cogeo and GDAL's COG validation ask (band interleaved, unlike GDAL 3.10's COG driver,
    so a day is read without decompressing the others)."""
    from rasterio.shutil import copy as copy_raster

    keys = ("compress", "zstd_level", "predictor", "interleave", "tiled", "blockxsize", "blockysize", "BIGTIFF")
    copy_raster(source, path, driver="GTiff", copy_src_overviews=True, **{k: profile[k] for k in keys if k in profile})


def write_window(dst, data: np.ndarray, row: int, col: int) -> None:
    """Write a (bands, rows, cols) array into an open writer at (row, col)."""
    window = Window(col, row, data.shape[-1], data.shape[-2])
    dst.write(data.astype(np.float32, copy=False), window=window)


def _written_as(path: str | os.PathLike, profile: dict) -> bool:
    """True where the raster at `path` is laid out as `profile` says (type, compression, blocks, band order, NaN
    nodata), so a copy of its blocks is the raster merge would write with it."""
    with rasterio.open(path) as src:
        have, uniform = src.profile, len(set(src.block_shapes)) == 1
    keys = ("dtype", "count", "compress", "interleave", "tiled", "blockxsize", "blockysize")
    same = all(str(have.get(key)).lower() == str(profile.get(key, have.get(key))).lower() for key in keys)
    return uniform and same and have.get("nodata") is not None and bool(np.isnan(have["nodata"]))


def merge(parts: Sequence[str | os.PathLike], path: str | os.PathLike, max_pixel_days: int = 32_000_000,
          dtype: str = "float32", cog: bool = False, days: Sequence[str] | None = None, threads: int = 1) -> Grid:
    """`_merge` with GDAL compressing the blocks in `threads` threads (GDAL_NUM_THREADS): the same bytes as
    one thread's, in less time (a demo map of 20 tiles: 3.9 -> 2.6 s as a COG on 2 threads)."""
    with rasterio.Env(GDAL_NUM_THREADS=str(max(1, int(threads)))):
        return _merge(parts, path, max_pixel_days, dtype, cog, days)


def _tile_layout(parts: Sequence[str | os.PathLike], path: str | os.PathLike):
    """(grid, grids, offsets, dates) of rasters that tile one grid (same CRS, pixel size and dates; no gap, no
    overlap): the region's grid, each part's grid and (row, col) offset in it, and the parts' dates; an error naming
    `path` (the raster they make) or the part where they do not."""
    grids = {str(part): read_grid(part) for part in parts}
    if not grids:
        raise ValueError(f"{path}: no tile to put together")
    first = next(iter(grids.values()))
    dates = read_dates(next(iter(grids)))
    left = min(g.bounds[0] for g in grids.values())
    top = max(g.bounds[3] for g in grids.values())
    offsets = {}
    for part, g in grids.items():
        col, row = (g.transform.c - left) / first.transform.a, (g.transform.f - top) / first.transform.e
        if (g.crs != first.crs or not np.isclose(g.transform.a, first.transform.a) or not np.isclose(g.transform.e, first.transform.e)
                or abs(row - round(row)) > 1e-6 or abs(col - round(col)) > 1e-6 or read_dates(part) != dates):
            raise ValueError(f"{part}: not a tile of the same grid and dates as {next(iter(grids))}")
        offsets[part] = (round(row), round(col))
    height = max(row + grids[p].height for p, (row, _) in offsets.items())
    width = max(col + grids[p].width for p, (_, col) in offsets.items())
    if sum(g.height * g.width for g in grids.values()) != height * width:
        raise ValueError(f"{path}: the {len(grids)} tiles leave gaps or overlap in their {height} x {width} grid")
    grid = Grid(first.crs, Affine(first.transform.a, 0.0, left, 0.0, first.transform.e, top), height, width)
    return grid, grids, offsets, dates


def _merge(parts: Sequence[str | os.PathLike], path: str | os.PathLike, max_pixel_days: int = 32_000_000,
           dtype: str = "float32", cog: bool = False, days: Sequence[str] | None = None) -> Grid:
    """Write rasters that tile one grid (same CRS, pixel size and dates; no gap, no overlap) as one raster on it, its
    values stored as `dtype` (DTYPES: float32 as the tiles hold them, or int16 scaled, see encode); with `cog`, as a
    Cloud-Optimized GeoTIFF (the maps a run writes), the values the same.

    The tiles are written strip by strip of whole block rows and all its columns (and, within a strip, bands at most
    `max_pixel_days` at a time), so every compressed block is written once and memory is bounded by a strip, whatever
    the region's size; for a COG into a temporary raster then copied block by block into the COG layout. A single
    float32 tile laid out as the output would be (the whole region, tiles.cells 0) is copied byte for byte, or into
    the COG layout, its values the same bits. `days`: the dates to keep (a time chunk's own days, its lead-in days left out), all where None.
    Returns the merged grid."""
    grid, grids, offsets, dates = _tile_layout(parts, path)
    height, width = grid.height, grid.width
    source_bands = list(range(len(dates) if dates else 1))
    if days is not None and list(days) != dates:
        source_bands = bands_of_dates(next(iter(grids)), days)
        dates = list(days)
    profile = _profile(grid, len(dates) if dates else 1, dtype)
    if len(grids) == 1 and source_bands == list(range(profile["count"])) and _written_as(next(iter(grids)), profile):
        with atomic_path(path) as tmp:  # one tile, the region (tiles.cells 0): its values are the merged raster's
            if cog:
                _copy_cog(next(iter(grids)), tmp, profile)
            else:
                shutil.copyfile(next(iter(grids)), tmp)
        return grid
    strip = profile.get("blockysize", height)
    count = profile["count"]
    bands = max(1, min(count, max_pixel_days // (strip * width)))
    with atomic_path(path) as tmp:
        if not cog:
            with _open_profile(tmp, profile, dates) as dst:
                _merge_strips(dst, grids, offsets, strip, bands, dtype, source_bands)
            return grid
        staging = _part_name(Path(path))
        try:
            with _open_profile(staging, profile, dates) as dst:
                _merge_strips(dst, grids, offsets, strip, bands, dtype, source_bands)
            _copy_cog(staging, tmp, profile)
        finally:
            staging.unlink(missing_ok=True)
    return grid


def _vrt_root(grid: Grid):
    """A VRTDataset element of `grid` (its size, CRS and transform)."""
    from xml.etree import ElementTree as ET

    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = CRS.from_user_input(grid.crs).to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in grid.transform.to_gdal())
    return root


def _vrt_band(root, band: int, date: str | None, profile: dict, scale: float, offset: float):
    """A VRTRasterBand of `root`: its type, date, nodata and value scale as the sources' `profile` has them."""
    from xml.etree import ElementTree as ET

    data_type = {"float32": "Float32", "int16": "Int16"}[profile["dtype"]]
    element = ET.SubElement(root, "VRTRasterBand", dataType=data_type, band=str(band))
    if date is not None:
        ET.SubElement(element, "Description").text = date
    nodata = profile["nodata"]
    if nodata is not None:
        ET.SubElement(element, "NoDataValue").text = "nan" if np.isnan(nodata) else repr(nodata)
    if (scale, offset) != (1.0, 0.0):
        ET.SubElement(element, "Offset").text = repr(offset)
        ET.SubElement(element, "Scale").text = repr(scale)
    return element


def _vrt_source(element, relative: str, band: int, width: int, height: int, row: int, col: int) -> None:
    """A source of a VRT band: band `band` of the raster at `relative` (to the VRT), all its `width` x `height`
    pixels placed at (`row`, `col`) of the VRT."""
    from xml.etree import ElementTree as ET

    source = ET.SubElement(element, "SimpleSource")
    ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = relative
    ET.SubElement(source, "SourceBand").text = str(band)
    size = dict(xSize=str(width), ySize=str(height))
    ET.SubElement(source, "SrcRect", xOff="0", yOff="0", **size)
    ET.SubElement(source, "DstRect", xOff=str(col), yOff=str(row), **size)


def write_time_vrt(parts: Sequence[str | os.PathLike], path: str | os.PathLike) -> list[str]:
    """A GDAL VRT at `path` whose bands are the bands of `parts` (dated rasters of one grid, type and encoding, in
    time order: a map's time chunks), so the whole record reads as one raster; sources relative to the VRT, so the
    folder can move. Returns the record's dates; dates out of order or repeated across the parts are an error."""
    from xml.etree import ElementTree as ET

    path = Path(path)
    if not parts:
        raise ValueError(f"{path}: no time chunk to join")
    with _open(parts[0]) as src:
        grid, profile = _grid_of(src), src.profile
        scale, offset = src.scales[0], src.offsets[0]
    dates: list[str] = []
    root = _vrt_root(grid)
    for part in parts:
        if read_grid(part) != grid:
            raise ValueError(f"{part}: not on the grid of {parts[0]}")
        relative = os.path.relpath(Path(part).resolve(), path.resolve().parent)
        for band, date in enumerate(read_dates(part), start=1):
            if dates and date <= dates[-1]:
                raise ValueError(f"{part}: date {date} does not follow {dates[-1]} of the chunks before it")
            dates.append(date)
            element = _vrt_band(root, len(dates), date, profile, scale, offset)
            _vrt_source(element, relative, band, grid.width, grid.height, 0, 0)
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")
    return dates


def write_mosaic_vrt(parts: Sequence[str | os.PathLike], path: str | os.PathLike,
                     days: Sequence[str] | None = None) -> Grid:
    """A GDAL VRT at `path` over rasters that tile one grid (a map's or a predictor's tiles, as io.merge takes them),
    so the region reads as one raster, the tiles' values and dates unchanged, without writing them again; sources
    relative to the VRT. `days`: the dates to keep (a time chunk's own), all where None. Returns the region's grid."""
    from xml.etree import ElementTree as ET

    path = Path(path)
    grid, grids, offsets, dates = _tile_layout(parts, path)
    with _open(next(iter(grids))) as src:
        profile, scale, offset = src.profile, src.scales[0], src.offsets[0]
    root = _vrt_root(grid)
    sources = {part: os.path.relpath(Path(part).resolve(), path.resolve().parent) for part in grids}
    source_bands = list(range(1, len(dates) + 1)) if dates else [1]
    if days is not None and list(days) != dates:
        source_bands = [b + 1 for b in bands_of_dates(next(iter(grids)), days)]
        dates = list(days)
    for band, (source_band, date) in enumerate(zip(source_bands, dates or [None], strict=True), start=1):
        element = _vrt_band(root, band, date, profile, scale, offset)
        for part, (row, col) in offsets.items():
            _vrt_source(element, sources[part], source_band, grids[part].width, grids[part].height, row, col)
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")
    return grid


def band_digest(path: str | os.PathLike, first: str, last: str) -> str:
    """A digest of the dates and values of a dated raster's bands from `first` to `last` (YYYY-MM-DD, inclusive):
    it changes where one of those days changes, and not where days outside them are added or changed."""
    import hashlib

    digest = hashlib.sha1()
    with _open(path) as src:
        for band, date in enumerate(_band_dates(src, path), start=1):
            if first <= date <= last:
                digest.update(date.encode())
                digest.update(np.ascontiguousarray(src.read(band)).tobytes())
    return digest.hexdigest()


def _merge_strips(dst, grids: dict[str, Grid], offsets: dict[str, tuple[int, int]], strip: int, bands: int,
                  dtype: str, source_bands: list[int]) -> None:
    """Write the tiles (their grids and (row, col) offsets in the open `dst`) strip by strip, `bands` at a time;
    band i of `dst` is the tiles' 0-based band source_bands[i]."""
    height, width, count = dst.height, dst.width, dst.count
    for top_row in range(0, height, strip):
        rows = min(strip, height - top_row)
        hits = [(p, r, c) for p, (r, c) in offsets.items() if r < top_row + rows and r + grids[p].height > top_row]
        for first_band in range(0, count, bands):
            indexes = list(range(first_band + 1, min(first_band + bands, count) + 1))
            out = np.full((len(indexes), rows, width), np.nan, dtype=np.float32)
            for part, row, col in hits:
                start, stop = max(top_row, row), min(top_row + rows, row + grids[part].height)
                with rasterio.open(part) as src:
                    window = Window(0, start - row, src.width, stop - start)
                    read = [source_bands[i - 1] + 1 for i in indexes]
                    out[:, start - top_row : stop - top_row, col : col + src.width] = src.read(read, window=window)
            dst.write(encode(out, dtype), indexes=indexes, window=Window(0, top_row, width, rows))


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json(path: str | os.PathLike, data) -> None:
    """Write JSON-serialisable data, atomically."""
    import json

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def write_stack(path: str | os.PathLike, stack: Stack) -> None:
    """Write a stack as a tiled, compressed float32 GeoTIFF with dated bands, atomically."""
    data = stack.data if stack.data.ndim == 3 else stack.data[np.newaxis]
    with open_writer(path, stack.grid, stack.dates, count=data.shape[0]) as dst:
        dst.write(data.astype(np.float32, copy=False))


# ---------------------------------------------------------------- warping


RESAMPLING = {"cubic": Resampling.cubic, "nearest": Resampling.nearest, "mode": Resampling.mode,
              "average": Resampling.average, "bilinear": Resampling.bilinear}


def warp(stack: Stack, grid: Grid, method: str = "cubic", scale: tuple[float, float] | None = None) -> Stack:
    """Warp a stack onto a grid with GDAL's warper (NaN is nodata on both sides).

    `scale` (destination pixels per source pixel, x and y) fixes the width of the resampling kernel;
    GDAL otherwise derives it from each chunk's shape, so a grid warped window by window would
    differ slightly from the same grid warped at once (see warp_scale)."""
    options = {"XSCALE": scale[0], "YSCALE": scale[1]} if scale else {}
    out = np.full((stack.data.shape[0], grid.height, grid.width), np.nan, dtype=np.float32)
    for band in range(stack.data.shape[0]):  # band by band: a NaN in one band must not mask the others
        reproject(
            source=np.ascontiguousarray(stack.data[band], dtype=np.float32),
            destination=out[band],
            src_transform=stack.grid.transform,
            src_crs=CRS.from_user_input(stack.grid.crs),
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=CRS.from_user_input(grid.crs),
            dst_nodata=np.nan,
            resampling=RESAMPLING[method],
            **options,
        )
    return Stack(out, grid, stack.dates)


def warp_scale(path: str | os.PathLike, grid: Grid) -> tuple[float, float]:
    """Destination pixels per source pixel (x, y) of a warp of a raster onto a whole grid, as GDAL
    computes it for one chunk: the grid's size over its footprint's size in the raster's pixels."""
    with _open(path) as src:
        footprint = _footprint(src, grid)
    return grid.width / footprint.width, grid.height / footprint.height


def overlaps(path: str | os.PathLike, grid: Grid) -> bool:
    """Whether a raster's footprint overlaps a grid (compared in the grid's CRS)."""
    src_grid = read_grid(path)
    left, bottom, right, top = transform_bounds(src_grid.crs, grid.crs, *src_grid.bounds, densify_pts=21)
    g_left, g_bottom, g_right, g_top = grid.bounds
    return left < g_right and right > g_left and bottom < g_top and top > g_bottom


def is_geographic(crs: str) -> bool:
    """Whether a CRS is geographic (its coordinates degrees of longitude and latitude)."""
    return bool(CRS.from_user_input(crs).is_geographic)


def sample_at(path: str | os.PathLike, grid: Grid, bands: Sequence[int] | None = None) -> np.ndarray:
    """A raster's values at the pixel centres of `grid` (bands x rows x cols, NaN where it has none), nearest.

    Read as a checker needs it: one decimated read (at most about two source pixels per grid pixel along each axis)
    of the window under the grid's footprint, of all bands or the 0-based `bands`, so the time and memory follow the
    grid's size and the bands read, not the raster's."""
    with _open(path) as src:
        indexes = list(range(1, src.count + 1)) if bands is None else [int(b) + 1 for b in bands]
        out = np.full((len(indexes), grid.height * grid.width), np.nan, dtype=np.float32)
        cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
        xs, ys = grid.transform @ (cols.ravel(), rows.ravel())
        px, py = transform_points(CRS.from_user_input(grid.crs), src.crs, xs, ys)
        px, py = np.asarray(px, dtype=float), np.asarray(py, dtype=float)
        finite = np.isfinite(px) & np.isfinite(py)
        c, r = ~src.transform @ (np.where(finite, px, 0.0), np.where(finite, py, 0.0))
        c, r = np.floor(c).astype(np.int64), np.floor(r).astype(np.int64)
        inside = finite & (r >= 0) & (r < src.height) & (c >= 0) & (c < src.width)
        if inside.any():
            r, c = r[inside], c[inside]
            r0, c0 = int(r.min()), int(c.min())
            height, width = int(r.max()) + 1 - r0, int(c.max()) + 1 - c0
            out_h, out_w = min(height, 2 * grid.height), min(width, 2 * grid.width)
            data = src.read(indexes, window=Window(c0, r0, width, height), out_shape=(len(indexes), out_h, out_w),
                            resampling=Resampling.nearest)
            data = _as_float(data, src.nodata)
            out[:, inside] = data[:, (r - r0) * out_h // height, (c - c0) * out_w // width]
    return out.reshape(len(indexes), grid.height, grid.width)


def lonlat_to(crs: str, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Project lon/lat (EPSG:4326) points into a CRS."""
    xs, ys = transform_points("EPSG:4326", crs, np.atleast_1d(lon), np.atleast_1d(lat))
    return np.asarray(xs), np.asarray(ys)


def to_lonlat(crs: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Unproject points of a CRS to lon/lat (EPSG:4326)."""
    lons, lats = transform_points(crs, "EPSG:4326", np.atleast_1d(x), np.atleast_1d(y))
    return np.asarray(lons), np.asarray(lats)


def pixel_size_m(grid: Grid) -> tuple[float, float]:
    """Pixel width and height in metres (degrees converted at the grid's centre latitude)."""
    crs = CRS.from_user_input(grid.crs)
    width, height = grid.transform.a, -grid.transform.e
    if crs.is_geographic:
        left, bottom, right, top = grid.bounds
        lat = np.deg2rad((bottom + top) / 2)
        metres_per_degree = 111_320.0
        return width * metres_per_degree * float(np.cos(lat)), height * metres_per_degree
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return width * factor, height * factor


def nest(fine: Grid, coarse: Grid) -> int:
    """The factor by which the fine grid nests in the coarse one (checked)."""
    factor = int(round(coarse.res / fine.res))
    ok = (
        factor >= 1
        and fine.shape == (coarse.height * factor, coarse.width * factor)
        and np.isclose(fine.transform.c, coarse.transform.c, atol=fine.res * 1e-3)
        and np.isclose(fine.transform.f, coarse.transform.f, atol=fine.res * 1e-3)
    )
    if not ok:
        raise InputError(
            f"the fine grid ({fine.height}x{fine.width} at {fine.res:.3f}) does not nest in the coarse grid "
            f"({coarse.height}x{coarse.width} at {coarse.res:.3f})"
        )
    return factor


def dated_bands(path: str | os.PathLike, dates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Band indices in ``path`` of those of ``dates`` it has, and their positions in ``dates``."""
    index = {d: i for i, d in enumerate(read_dates(path))}
    pos = np.array([i for i, d in enumerate(dates) if d in index], dtype=int)
    bands = np.array([index[dates[i]] for i in pos], dtype=int)
    return bands, pos


def read_dated(path, row, col, height, width, dates, aligned=None) -> np.ndarray:
    """A window on the given dates; dates the file lacks are NaN."""
    bands, pos = aligned if aligned is not None else dated_bands(path, dates)
    out = np.full((len(dates), height, width), np.nan, dtype=np.float32)
    if bands.size:
        out[pos] = read_window(path, row, col, height, width, bands)
    return out
