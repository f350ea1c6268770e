import os
import stat

import pytest

from xlprobe.io import atomic_path, read_json, write_json


def test_atomic_write_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
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
