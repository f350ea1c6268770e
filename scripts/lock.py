#!/usr/bin/env python3
"""Write down, once, the versions CI tests; the conda environments pin the same ones.

`python scripts/lock.py` (in the project's .venv, online) resolves, in one pass of pip's resolver
against PyPI on this platform and Python: torch at the locked version, the build backend, and the
project with all its extras. It writes

- requirements/lock.txt: every resolved package except the CUDA runtime of torch's PyPI wheel.
  scripts/setup.sh installs with it as constraints, so CI runs exactly these versions.
- requirements/cuda.txt: that CUDA runtime (what torch requires on Linux only). Resolved, never
  installed by CI (no GPU); envs/gpu.yaml pins it so a GPU node gets what was resolved here.
- the `pip:` section of each envs/*.yaml: the packages the environment names (its first block, kept
  by hand: the imports of its rules), then their dependencies and, with torch, its CUDA runtime, all
  at the locked versions. The conda part above it (python, pip) is kept as written.

tests/test_envs.py checks the three against each other and installs each environment's pip section.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
CUDA_LOCK = REPO / "requirements" / "cuda.txt"
ENVS = REPO / "envs"
PYPI = "https://pypi.org/simple"
# The CUDA runtime is whatever torch requires only on Linux; its pins carry torch's marker.
CUDA_OWNER = "torch"
CUDA_MARKER = 'platform_system == "Linux"'
DIRECT_HEADER = (
    "# named here: what the rules import (tests/test_envs.py checks it), setuptools for post-deploy.sh"
)
DEPS_HEADER = "# their dependencies, at the versions CI tests (scripts/lock.py writes these)"
CUDA_HEADER = "# the CUDA runtime of the torch wheel from PyPI, on Linux (requirements/cuda.txt)"
PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


# ----------------------------------------------------------------------------------- reading
def read_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a lock file: canonical name -> version."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN_RE.match(line)
        if not m:
            raise ValueError(f"{path}:{number}: expected name==version, got {line!r}")
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def locked_python(path: Path = LOCK) -> str:
    """The Python (major.minor) the lock was resolved for, from its `# python: 3.11` line."""
    m = re.search(r"^# python: (\d+\.\d+)$", path.read_text(), re.MULTILINE)
    if not m:
        raise ValueError(f"{path}: no '# python: X.Y' line")
    return m.group(1)


def env_pins(env_file: Path) -> tuple[dict[str, str], list[tuple[str, str, str | None]]]:
    """(conda name -> version spec, [(pip name, version, marker)]) of an environment file."""
    import yaml

    spec = yaml.safe_load(env_file.read_text())
    conda, pip = {}, []
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip") or []:
                m = PIN_RE.match(str(line).strip())
                if not m:
                    raise ValueError(f"{env_file}: pip: {line!r} is not name==version")
                pip.append((canonicalize_name(m.group(1)), m.group(2), m.group(3)))
        else:
            name, _, version = str(dep).partition(" ")
            conda[name.split("::")[-1]] = version.strip()
    return conda, pip


def direct_names(env_text: str) -> list[str]:
    """The names in the first block of the pip: section (above DEPS_HEADER), as written."""
    head = env_text.split(DEPS_HEADER, 1)[0].split("- pip:", 1)
    if len(head) != 2:
        raise ValueError("no `- pip:` section")
    return [m.group(1) for m in re.finditer(r"^\s*- ([A-Za-z0-9][A-Za-z0-9._-]*)==", head[1], re.MULTILINE)]


# ----------------------------------------------------------------------------------- resolving
def pypi_only_env() -> dict[str, str]:
    """Environment for pip that sees PyPI alone: no config files, no local wheels or mirrors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def resolve(python: str, requirements: list[str], cwd: Path = REPO) -> dict:
    """pip's installation report (--dry-run, nothing installed) for `requirements` from PyPI."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            python,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--index-url",
            PYPI,
            "--report",
            str(report),
            *requirements,
        ]
        run = subprocess.run(cmd, cwd=cwd, env=pypi_only_env(), check=False, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"pip could not resolve {requirements}:\n{run.stderr[-3000:]}")
        return json.loads(report.read_text())


def closure(report: dict, roots: dict[str, set[str]], cuda: bool) -> set[str]:
    """Canonical names of `roots` (name -> extras) and everything they require in `report`, with
    markers evaluated for the resolving platform; without `cuda`, torch's Linux-only needs are left out."""
    metadata = {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    platform = report["environment"]
    extras: dict[str, set[str]] = {}
    todo = [(canonicalize_name(n), set(e)) for n, e in roots.items()]
    while todo:
        name, wanted = todo.pop()
        if name not in metadata:
            raise KeyError(f"{name} is not in the resolution: the project does not depend on it")
        if name in extras and wanted <= extras[name]:
            continue
        extras[name] = extras.get(name, set()) | wanted
        for text in metadata[name].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker is not None:
                if not any(req.marker.evaluate({**platform, "extra": e}) for e in {"", *extras[name]}):
                    continue
                if not cuda and name == CUDA_OWNER and "extra" not in str(req.marker):
                    continue
            todo.append((canonicalize_name(req.name), set(req.extras)))
    return set(extras)


# ----------------------------------------------------------------------------------- writing
def render_env(env_text: str, versions: dict[str, str], deps: list[str], cuda: list[str]) -> str:
    """The environment file with its pip: section rewritten; everything above `- pip:` kept."""
    head, _, _ = env_text.partition("  - pip:\n")
    lines = ["  - pip:", f"      {DIRECT_HEADER}"]
    lines += [f"      - {n}=={versions[canonicalize_name(n)]}" for n in direct_names(env_text)]
    if deps:
        lines += [f"      {DEPS_HEADER}"] + [f"      - {n}=={versions[n]}" for n in deps]
    if cuda:
        lines += [f"      {CUDA_HEADER}"] + [f"      - {n}=={versions[n]}; {CUDA_MARKER}" for n in cuda]
    return head + "\n".join(lines) + "\n"


def lock_text(pins: dict[str, str], what: str, report: dict) -> str:
    env = report["environment"]
    header = [
        f"# {what}",
        (
            "# Written by `python scripts/lock.py` (pip's resolver, PyPI, "
            f"CPython {env['python_full_version']} on {env['platform_system']} {env['platform_machine']}); "
            "do not edit."
        ),
        f"# python: {env['python_version']}",
    ]
    return "\n".join(header + [f"{n}=={v}" for n, v in sorted(pins.items())]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", help="torch version to lock (default: the one in requirements/lock.txt)")
    args = parser.parse_args()
    import tomllib  # Python >= 3.11; the tests import this module on 3.10 too

    torch = args.torch or read_pins(LOCK)[CUDA_OWNER]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = sorted(project["project"].get("optional-dependencies", {}))
    build = project["build-system"]["requires"]
    report = resolve(sys.executable, [f"torch=={torch}", *build, "-e", f".[{','.join(extras)}]"])

    versions = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    roots = {canonicalize_name(Requirement(r).name): set() for r in build} | {"xlprobe": set(extras)}
    roots[CUDA_OWNER] = set()
    everything = closure(report, roots, cuda=True)
    cpu = closure(report, roots, cuda=False) - {"xlprobe"}
    LOCK.parent.mkdir(exist_ok=True)
    LOCK.write_text(
        lock_text(
            {n: versions[n] for n in cpu},
            "The versions CI tests: scripts/setup.sh "
            "installs with this file as constraints; envs/*.yaml pin the same.",
            report,
        )
    )
    CUDA_LOCK.write_text(
        lock_text(
            {n: versions[n] for n in everything - cpu - {"xlprobe"}},
            "The CUDA runtime of the torch wheel on PyPI (Linux): resolved, not "
            "installed by CI; envs/gpu.yaml pins it.",
            report,
        )
    )
    for env_file in sorted(ENVS.glob("*.yaml")):
        text = env_file.read_text()
        direct = {canonicalize_name(n): set() for n in direct_names(text)}
        own = closure(report, direct, cuda=False)
        cuda = closure(report, direct, cuda=True) - own
        env_file.write_text(render_env(text, versions, sorted(own - set(direct)), sorted(cuda)))
        print(
            f"{env_file.relative_to(REPO)}: {len(direct)} named, {len(own) - len(direct)} dependencies, "
            f"{len(cuda)} CUDA runtime"
        )
    print(
        f"{LOCK.relative_to(REPO)}: {len(cpu)} packages; {CUDA_LOCK.relative_to(REPO)}: "
        f"{len(everything - cpu - {'xlprobe'})}"
    )


if __name__ == "__main__":
    main()
