"""Compare the contract outputs of two runs: python .ci/slurm/compare.py RESULTS_A RESULTS_B [--tolerance T].

RESULTS_A and RESULTS_B are two `results/<run>` folders. Compared: every GeoTIFF under downscaled/ (grid, band
dates, NaN positions and values), evaluation/metrics.csv and the tables under sensitivity/ (same rows and text
columns, numeric values). Prints the largest absolute difference per file and fails (exit 1) where a file is missing
on one side, differs in anything but numbers, or differs by more than the tolerance (default 0: bitwise equal).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io

PATTERNS = ("downscaled/**/*.tif", "evaluation/metrics.csv", "sensitivity/**/*.csv")


def contract_files(results: Path) -> set[str]:
    return {str(path.relative_to(results)) for pattern in PATTERNS for path in results.glob(pattern)}


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| where both are numbers; inf where the shapes or the NaN positions differ."""
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    return float(np.max(np.abs(a[both].astype(np.float64) - b[both]), initial=0.0))


def compare_raster(a: Path, b: Path) -> tuple[float, str]:
    sa, sb = io.read_stack(a), io.read_stack(b)
    if sa.grid != sb.grid or sa.dates != sb.dates:
        return float("inf"), "grid or dates differ"
    bitwise = sa.data.tobytes() == sb.data.tobytes()
    return max_difference(sa.data, sb.data), f"{sa.data.shape}, {'bitwise equal' if bitwise else 'values differ'}"


def compare_table(a: Path, b: Path) -> tuple[float, str]:
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    if list(ta.columns) != list(tb.columns) or len(ta) != len(tb):
        return float("inf"), "columns or rows differ"
    numeric = [c for c in ta.columns if pd.api.types.is_numeric_dtype(ta[c]) and pd.api.types.is_numeric_dtype(tb[c])]
    text = [c for c in ta.columns if c not in numeric]
    if not ta[text].astype(str).equals(tb[text].astype(str)):
        return float("inf"), "text columns differ"
    diff = max_difference(ta[numeric].to_numpy(np.float64), tb[numeric].to_numpy(np.float64)) if numeric else 0.0
    return diff, f"{len(ta)} rows, {len(numeric)} numeric columns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest absolute difference allowed")
    args = parser.parse_args(argv)
    files_a, files_b = contract_files(args.a), contract_files(args.b)
    failed = sorted(files_a ^ files_b)
    for name in failed:
        print(f"MISSING  {name}: only in {args.a if name in files_a else args.b}")
    if not files_a & files_b or not any(name.endswith(".tif") for name in files_a):
        print(f"no contract outputs under {args.a}")
        return 1
    worst = 0.0
    for name in sorted(files_a & files_b):
        compare = compare_raster if name.endswith(".tif") else compare_table
        diff, what = compare(args.a / name, args.b / name)
        ok = diff <= args.tolerance
        worst = max(worst, diff)
        print(f"{'ok' if ok else 'DIFFERS':8} {name}: max |difference| {diff:.3g} ({what})")
        if not ok:
            failed.append(name)
    print(f"{len(files_a & files_b)} files compared, largest difference {worst:.3g}, tolerance {args.tolerance:g}: "
          f"{'FAILED (' + str(len(failed)) + ' files)' if failed else 'equal'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
