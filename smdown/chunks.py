"""Time chunks: a run applying trained models (config models.from) maps its period one chunk of days (an ISO week or
a calendar month, config chunks.by) at a time, so that days added to its inputs rerun only the chunks whose days
changed, and the maps of the other chunks keep their bytes.

A chunk's jobs read its own days and the `lead_days` before them (its window): the antecedent precipitation index
and the LSTM carry a memory of the days before, which fades within the lead-in, so the chunk's maps equal those of a
run over the whole period to within that fading (docs/operational.md gives the measured figures). The raw inputs
are read by digest (io.band_digest over the days a chunk's window depends on), not by time stamp, so a file that
grows by new days leaves the older chunks' jobs as they are.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

BY = ("week", "month")


@dataclass(frozen=True)
class Chunk:
    """A chunk's own days and its window (its lead-in days, then its own days), YYYY-MM-DD."""

    name: str
    days: tuple[str, ...]
    window: tuple[str, ...]

    @property
    def lead(self) -> int:
        return len(self.window) - len(self.days)


def chunk_name(date: str, by: str) -> str:
    """The chunk a date belongs to: 2024-05 (a month) or 2024-W19 (an ISO week)."""
    day = dt.date.fromisoformat(date)
    if by == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    raise ValueError(f"chunks.by {by!r}: not one of {BY}")


def split(dates: list[str], by: str, lead_days: int) -> dict[str, Chunk]:
    """The chunks of a record's dates (in time order), each with the record's days of the `lead_days` calendar days
    before its first day as its lead-in."""
    names: dict[str, list[str]] = {}
    for date in dates:
        names.setdefault(chunk_name(date, by), []).append(date)
    chunks = {}
    for name, days in names.items():
        start = shift(days[0], -lead_days)
        window = tuple(d for d in dates if start <= d <= days[-1])
        chunks[name] = Chunk(name, tuple(days), window)
    return chunks


def shift(date: str, days: int) -> str:
    """The date `days` calendar days after `date` (before, where negative)."""
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def extract_days(source: str, days: list[str], output: str) -> None:
    """Step of rule chunk_coarse: the bands of `days` of a dated raster (a coarse layer's days of a chunk's window),
    as read, into `output`."""
    from smdown import io

    stack = io.read_stack(source)
    bands = io.bands_of_dates(source, days)
    io.write_stack(output, io.Stack(stack.data[bands], stack.grid, list(days)))
    log.info("%s: %d days (%s to %s) of %s", output, len(days), days[0], days[-1], source)


def write_record(parts: list[str], output: str) -> None:
    """Step of rule record: a map's whole period as a VRT over its time chunks' GeoTIFFs (in time order)."""
    from smdown import io

    dates = io.write_time_vrt(parts, output)
    log.info("%s: %d days from %d chunks (%s to %s)", output, len(dates), len(parts), dates[0], dates[-1])
