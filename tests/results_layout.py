"""Result files for tests of the aggregates: the provenance record that names a result's point."""

from __future__ import annotations

from pathlib import Path

from xlprobe.io import write_json
from xlprobe.provenance import sidecar_path


def point_from_layout(path, kind):
    """The point a test file stands for, from its place in the results layout (tests only)."""
    p = Path(path)
    if kind == "overlap":  # overlap/<model>/<step>/layer<L>.tsv
        return {"model": p.parent.parent.name, "step": p.parent.name, "layer": int(p.stem.removeprefix("layer"))}
    if kind == "transfer":  # transfer/<model>/<step>/<task>.tsv
        return {"model": p.parent.parent.name, "step": p.parent.name, "task": p.stem}
    return {"model": p.parent.name, "step": p.stem}  # similarity/<model>/<step>.tsv


def record_point(path, kind, point=None):
    """Write the provenance record that names a result's point, where its stage writes it."""
    point = point or point_from_layout(path, kind)
    if kind == "transfer":
        write_json(Path(path).with_suffix(".json"), {"provenance": {"point": point}})
    else:
        write_json(sidecar_path(path), {"point": point})
