import os
import stat
from pathlib import Path

import pytest

from xlprobe.io import atomic_path, read_json, write_json


def test_atomic_write_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("job died")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_has_ordinary_permissions(tmp_path):
    target = tmp_path / "result.json"
    write_json(target, {"a": 1})
    assert read_json(target) == {"a": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


# A job that writes one target: it announces its temporary file, then works until it is killed. The
# work is short sleeps, as a computing job runs Python between its calls: the kernel may hand SIGTERM
# to any thread (numpy's BLAS starts some), and Python runs the handler when the main thread next runs
# Python code, so one long sleep would hold it for the whole sleep.
WRITER = """
import sys, time
from xlprobe.io import atomic_path
from xlprobe.logs import log_to

with log_to(sys.argv[2]):
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half")
        print(tmp, file=sys.__stdout__, flush=True)
        for _ in range(600):
            time.sleep(0.1)
"""


def start_writer(tmp_path):
    import subprocess
    import sys

    target, log = tmp_path / "out" / "probe.json", tmp_path / "job.log"
    job = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(log)], stdout=subprocess.PIPE, text=True)
    temporary = Path(job.stdout.readline().strip())
    assert temporary.is_file() and temporary.parent == target.parent
    return job, target, temporary, log


def test_terminated_job_removes_its_temporary_file(tmp_path):
    import signal

    job, target, temporary, log = start_writer(tmp_path)
    job.send_signal(signal.SIGTERM)  # what scancel and a SLURM time limit send first
    assert job.wait(timeout=30) == 128 + signal.SIGTERM
    assert not temporary.exists() and not target.exists()
    assert "SystemExit" in log.read_text()


def test_killed_jobs_leftover_is_removed_by_the_next_attempt(tmp_path):
    import signal

    job, target, temporary, _ = start_writer(tmp_path)
    job.send_signal(signal.SIGKILL)  # nothing runs: the temporary file stays
    job.wait(timeout=30)
    assert temporary.exists() and not target.exists()
    neighbour = target.parent / ".probe.json2.abc.tmp"  # another target's temporary file
    neighbour.write_text("other")
    write_json(target, {"done": True})
    assert read_json(target) == {"done": True}
    assert not temporary.exists()
    assert neighbour.exists()
