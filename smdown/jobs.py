"""The workflow's rules as Python: one module per rule file of workflow/rules/, one function per rule.

Each step takes file paths and the explicit settings its rule passes as `params:` (never the whole
config), calls the science modules and writes its outputs. The Snakemake scripts call these.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from smdown import io
from smdown.grid import nest_factor

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(path: str | None) -> None:
    """Log to the rule's log file (and stderr), one line per event; an uncaught exception is logged there
    too, with its traceback, before the job fails."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)

    def log_uncaught(kind, value, traceback):
        logging.getLogger("smdown").critical("job failed: %s", value, exc_info=(kind, value, traceback))
        sys.__excepthook__(kind, value, traceback)

    sys.excepthook = log_uncaught


def factor_of(scale: str, coarse_path: str) -> int | None:
    """Integer factor of a scale name in the coarse cell; None for the coarse grid itself."""
    if scale == "coarse":
        return None
    return nest_factor(io.read_grid(coarse_path).res, float(scale))


def use_threads(threads: int) -> None:
    """Give a job's TensorFlow work the threads Snakemake granted it (TensorFlow's thread pools are the process's;
    the steps pass the same `threads` to ONNX Runtime and scikit-learn as an argument)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
