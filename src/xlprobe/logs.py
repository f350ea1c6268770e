"""Logging for workflow jobs and the command line: one log file per job, progress bars included."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from typing import Iterator

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr (tqdm progress bars) to `path` for the duration of the block.

    An exception is written to the log with its traceback and then re-raised, so the job fails
    and the log says why.
    """
    logger = logging.getLogger("xlprobe")
    if path is None:
        logging.basicConfig(level=level, format=LOG_FORMAT)
        yield logger
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", buffering=1) as handle:
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
