"""Result files for tests of the aggregates, each with the identity its stage gives it: identity columns
(xlprobe.identity.with_identity), and for an overlap table the provenance record that names its point."""

from __future__ import annotations

from pathlib import Path

from xlprobe.identity import point as result_point
from xlprobe.identity import with_identity
from xlprobe.io import write_json
from xlprobe.provenance import sidecar_path


def point_from_layout(path, kind):
    """The point a test file stands for, from its place in the results layout (tests only)."""
    p = Path(path)
    if kind in ("overlap", "probe_transfer"):  # <kind>/<model>/<step>/layer<L>.tsv
        return result_point(p.parent.parent.name, p.parent.name, layer=p.stem.removeprefix("layer"))
    if kind == "transfer":  # transfer/<model>/<step>/<task>.tsv
        return result_point(p.parent.parent.name, p.parent.name, task=p.stem)
    return result_point(p.parent.name, p.stem)  # similarity/<model>/<step>.tsv


def identified(frame, path, kind, point=None):
    """`frame` led by its identity columns: `point`, else the one its path stands for."""
    return with_identity(frame, result_point(**point) if point else point_from_layout(path, kind))


def record_point(path, kind, point=None):
    """Write the provenance record that names a table's point, as the overlap stage writes it."""
    write_json(sidecar_path(path), {"point": point or point_from_layout(path, kind)})
