"""Logging for workflow jobs and the command line: one log file per job, progress bars included."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import traceback
from collections.abc import Iterator

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Python's default for SIGTERM is to die at once, running no `finally` blocks."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr (tqdm progress bars) to `path` for the duration of the block.

    An exception is written to the log with its traceback and then re-raised, so the job fails
    and the log says why. SIGTERM (scancel, a SLURM time limit, Snakemake stopping) becomes SystemExit
    for the duration, so that half-written temporary files are removed on the way out.
    """
    logger = logging.getLogger("xlprobe")
    if path is None:
        logging.basicConfig(level=level, format=LOG_FORMAT)
        yield logger
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1) as handle, _terminate_as_exit():
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield logger
        except BaseException:
            handle.write(traceback.format_exc())
            raise
        finally:
            root.removeHandler(handler)
