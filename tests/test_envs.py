"""The conda environments of envs/: what they list, that they pin the versions CI tests, and that they build.

For every rule in rules/*.smk: its `conda:` file, its `script:`, the imports of that script, and the
imports of every xlprobe module it reaches (transitively, also through imports inside functions).
Imports inside `try: ... except ImportError` are optional and not required. Scripts that do not
exist yet are skipped, so the test runs on whatever part of the library is written.

Versions are written once, in requirements/lock.txt (and cuda.txt), by scripts/lock.py: setup.sh
installs CI's environment with it as constraints, the environments pin the same versions, and each
environment's pip: section is installed here into a fresh virtual environment (the CUDA pieces only
resolved), with the project imported in it. No conda channel is reachable here: conda brings only
Python and pip, at versions checked on the conda-forge feedstocks (docs/cluster.md).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "xlprobe"
_spec = importlib.util.spec_from_file_location("xlprobe_lock", REPO / "scripts" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)

# Import name -> the conda-forge (or PyPI) package names that provide it. Anything not listed here
# is expected under its own name (lower case, '_' -> '-').
IMPORT_TO_PACKAGES = {
    "torch": {"torch", "pytorch", "pytorch-gpu", "pytorch-cpu"},
    "sklearn": {"scikit-learn"},
    "yaml": {"pyyaml"},
    "PIL": {"pillow"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "mpl_toolkits": {"matplotlib", "matplotlib-base"},
    "seaborn": {"seaborn", "seaborn-base"},
    "skimage": {"scikit-image"},
    "cv2": {"opencv", "py-opencv", "opencv-python", "opencv-python-headless"},
    "dateutil": {"python-dateutil"},
    "bs4": {"beautifulsoup4"},
    "attr": {"attrs"},
    "google": {"protobuf"},
    "Bio": {"biopython"},
    "jwt": {"pyjwt"},
}
# Provided without the environment: `snakemake` by the script preamble (it puts Snakemake's own
# site-packages on sys.path), the project by envs/<env>.post-deploy.sh.
NOT_FROM_ENV = {"snakemake", PACKAGE, "__future__"}

RULE_RE = re.compile(r"^[ \t]*(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:", re.MULTILINE)
ACTION_RE = re.compile(r"^[ \t]*(script|shell|run|notebook|wrapper|cwl)[ \t]*:", re.MULTILINE)


def directive(block: str, name: str) -> str | None:
    """The string literal given to `name:` in a rule block (on the same or the next line)."""
    m = re.search(rf"^[ \t]*{name}[ \t]*:\s*(f?)(['\"])(.*?)\2", block, re.MULTILINE | re.DOTALL)
    return m.group(3) if m else None


def smk_constants(text: str) -> dict[str, str]:
    """Top-level `NAME = "literal"` assignments of a rule file (SCRIPTS = "workflow/scripts", ...)."""
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*['\"]([^'\"]*)['\"][ \t]*$", text, re.MULTILINE))


@dataclass
class Rule:
    name: str
    smk: Path
    action: str | None
    conda: Path | None
    script: Path | None
    unresolved: list[str] = field(default_factory=list)


def parse_rules(smk_files: list[Path], constants: dict[str, str]) -> list[Rule]:
    rules = []
    for smk in smk_files:
        text = smk.read_text()
        heads = list(RULE_RE.finditer(text))
        for i, head in enumerate(heads):
            block = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            action = ACTION_RE.search(block)
            rule = Rule(head.group(1), smk, action.group(1) if action else None, None, None)
            for key in ("conda", "script"):
                value = directive(block, key)
                if value is None:
                    continue
                for placeholder in re.findall(r"\{(\w+)\}", value):
                    if placeholder in constants:
                        value = value.replace("{" + placeholder + "}", constants[placeholder])
                    else:
                        rule.unresolved.append(f"{key}: {{{placeholder}}}")
                # Snakemake resolves both relative to the file that defines the rule.
                setattr(rule, key, (smk.parent / value).resolve())
            rules.append(rule)
    return rules


# ----------------------------------------------------------------------------------- imports
@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name
    optional: bool  # inside try/except ImportError
    source: Path


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    if isinstance(handler.type, ast.Tuple):
        names = [e for e in handler.type.elts]
    elif handler.type is not None:
        names = [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def imports_of(path: Path, module: str | None) -> list[Import]:
    """Every import in a file; `module` (dotted, None for a script) resolves relative imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, optional, path) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    return  # relative import in a script: not a package module
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append(Import(base, optional, path))
            # `from pkg import sub` may import a submodule: keep the candidates, resolved later.
            found.extend(Import(f"{base}.{alias.name}", optional, path) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def module_file(src: Path, dotted: str) -> Path | None:
    base = src.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path, src: Path, package: str = PACKAGE) -> dict[str, list[Import]]:
    """Top-level third-party module -> the required imports of it, over the script and every
    module of `package` (under `src`) that it reaches."""
    return reached(script, src, package)[0]


def reached(script: Path, src: Path, package: str = PACKAGE) -> tuple[dict[str, list[Import]], set[str]]:
    """(third_party_imports, the dotted names of the modules of `package` the script reaches)."""
    required: dict[str, list[Import]] = {}
    modules: set[str] = set()
    seen: set[Path] = set()
    queue: list[tuple[Path, str | None]] = [(script, None)]
    while queue:
        path, module = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        if module is not None:
            modules.add(module)
        for imp in imports_of(path, module):
            top = imp.module.split(".")[0]
            if top == package:
                parts = imp.module.split(".")
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                for n in range(1, len(parts) + 1):
                    dotted = ".".join(parts[:n])
                    file = module_file(src, dotted)
                    if file is not None:
                        queue.append((file, dotted))
                continue
            if not top or top in NOT_FROM_ENV or top in sys.stdlib_module_names or imp.optional:
                continue
            required.setdefault(top, []).append(imp)
    return required, modules


# ----------------------------------------------------------------------------------- environments
def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_packages(env_file: Path) -> set[str]:
    spec = yaml.safe_load(env_file.read_text())
    names = set()
    for dep in spec.get("dependencies", []):
        if isinstance(dep, str):
            dep = dep.split("::")[-1]
            names.add(normalize(re.split(r"[\s=<>!\[]", dep.strip(), maxsplit=1)[0]))
        elif isinstance(dep, dict):
            for req in dep.get("pip") or []:
                req = str(req).strip()
                if req.startswith("-"):
                    continue
                m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
                if m:
                    names.add(normalize(m.group(0)))
    return names


def providers(top: str) -> set[str]:
    return {normalize(p) for p in IMPORT_TO_PACKAGES.get(top, {top})}


def missing_packages(env_file: Path, script: Path, src: Path) -> dict[str, list[Import]]:
    listed = env_packages(env_file)
    return {
        top: imps
        for top, imps in sorted(third_party_imports(script, src).items())
        if not providers(top) & listed
    }


# ----------------------------------------------------------------------------------- the repo's rules
def repo_rules() -> list[Rule]:
    smk_files = sorted((REPO / "rules").glob("*.smk"))
    constants = {}
    for smk in smk_files:
        constants.update(smk_constants(smk.read_text()))
    return parse_rules([REPO / "Snakefile", *smk_files], constants)


RULES = repo_rules()
SCRIPT_RULES = [r for r in RULES if r.script is not None]


def test_rules_were_found(tmp_path):
    assert SCRIPT_RULES, "no rule with a script: in rules/*.smk: the parser no longer matches the files"
    # The parser sees every rule Snakemake sees (checkpoints included), with the paper's and the demo's config.
    seen = set()
    for config in ("config.yaml", "config/demo.yaml"):
        listed = subprocess.run(
            [sys.executable, "-m", "snakemake", "--list-rules", "--snakefile", str(REPO / "Snakefile"),
             "--configfile", str(REPO / config), "--directory", str(tmp_path)],
            capture_output=True, text=True, check=True, timeout=120,
        )
        seen |= {line.strip() for line in listed.stdout.splitlines() if line.strip()}
    assert {r.name for r in RULES} == seen


@pytest.mark.parametrize("rule", [r for r in RULES if r.action], ids=lambda r: r.name)
def test_every_rule_names_an_environment(rule: Rule):
    where = rule.smk.relative_to(REPO)
    assert not rule.unresolved, f"rule {rule.name} ({where}): cannot resolve {rule.unresolved}"
    if rule.action == "run":
        pytest.skip("run: blocks execute in Snakemake's own process; conda does not apply")
    assert rule.conda is not None, f"rule {rule.name} ({where}) has no conda: directive"
    assert rule.conda.is_file(), f"rule {rule.name} ({where}): {rule.conda} does not exist"


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=lambda r: r.name)
def test_environment_lists_every_imported_package(rule: Rule):
    if rule.conda is None or not rule.conda.is_file():
        pytest.skip("no environment file (test_every_rule_names_an_environment reports it)")
    if not rule.script.is_file():
        pytest.skip(f"{rule.script.relative_to(REPO)} is not written yet")
    missing = missing_packages(rule.conda, rule.script, REPO / "src")
    lines = [
        f"  {top} (one of {sorted(providers(top))}), imported in "
        + ", ".join(sorted({str(i.source.relative_to(REPO)) for i in imps}))
        for top, imps in missing.items()
    ]
    assert not missing, (
        f"rule {rule.name} runs {rule.script.relative_to(REPO)} in {rule.conda.relative_to(REPO)}, "
        "which lacks:\n" + "\n".join(lines)
    )


ENV_FILES = sorted({r.conda for r in RULES if r.conda is not None and r.conda.is_file()})


# The conda part of every environment: versions whose publication on conda-forge was checked in the
# feedstocks' recipes and history (docs/cluster.md lists the commits). Change them only after the same check.
CHECKED_ON_CONDA_FORGE = {"python": "=3.11", "pip": "=26.0.1"}
LOCKED = lock.read_pins(lock.LOCK)
CUDA_LOCKED = lock.read_pins(lock.CUDA_LOCK)


def pin_problems(env_file: Path) -> list[str]:
    """Where the pip: pins of an environment differ from the versions CI tests."""
    problems = []
    for name, version, marker in lock.env_pins(env_file)[1]:
        cuda = name in CUDA_LOCKED
        source = lock.CUDA_LOCK if cuda else lock.LOCK
        tested = (CUDA_LOCKED if cuda else LOCKED).get(name)
        if tested is None:
            problems.append(f"{name}=={version} is in neither requirements/lock.txt nor cuda.txt")
        elif version != tested:
            problems.append(f"{name}=={version}, but {source.relative_to(REPO)} has {name}=={tested}")
        elif (marker == lock.CUDA_MARKER) != cuda:
            problems.append(f"{name}: the CUDA runtime of torch, and only it, carries `; {lock.CUDA_MARKER}`")
    return problems


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_brings_only_python_and_pip_from_conda_forge(env_file: Path):
    spec = yaml.safe_load(env_file.read_text())
    assert spec.get("channels") == ["conda-forge", "nodefaults"], spec.get("channels")
    conda = lock.env_pins(env_file)[0]
    assert conda == CHECKED_ON_CONDA_FORGE, (
        f"{env_file.name}: conda pins {conda}; only {CHECKED_ON_CONDA_FORGE} were checked on conda-forge"
    )
    assert conda["python"] == "=" + lock.locked_python(), "the environment's Python is not the lock's"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_environment_pins_the_tested_versions(env_file: Path):
    problems = pin_problems(env_file)
    assert not problems, (
        f"{env_file.relative_to(REPO)} does not pin the versions CI tests (run python scripts/lock.py):\n  "
        + "\n  ".join(problems)
    )


def test_pin_check_names_the_differing_pin(tmp_path: Path):
    env = tmp_path / "gpu.yaml"
    text = (REPO / "envs" / "gpu.yaml").read_text()
    env.write_text(text.replace(f"transformers=={LOCKED['transformers']}", "transformers==5.23.0"))
    tested = LOCKED["transformers"]
    assert pin_problems(env) == [f"transformers==5.23.0, but requirements/lock.txt has transformers=={tested}"]


def project_requirements() -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    texts = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    for extra in project["project"].get("optional-dependencies", {}).values():
        texts += extra
    return {canonicalize_name(Requirement(t).name) for t in texts} - {PACKAGE}


def test_lock_covers_the_project():
    missing = sorted(project_requirements() - set(LOCKED))
    assert not missing, (
        f"pyproject.toml requires {missing}, absent from requirements/lock.txt: run python scripts/lock.py"
    )


def test_this_environment_runs_the_locked_versions():
    python = "{}.{}".format(*sys.version_info[:2])
    if python != lock.locked_python():
        message = f"Python {python}: scripts/setup.sh installs the lock only on Python {lock.locked_python()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {
        name: f"{installed[name]} installed, {version} locked"
        for name, version in LOCKED.items()
        if name in installed and Version(installed[name]).public != version
    }
    assert not wrong, f"not the tested versions (bash scripts/setup.sh installs them): {wrong}"


def test_readme_and_docs_state_the_locked_versions():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "requirements/lock.txt" in setup, "README's set-up does not name the lock"
    pins = re.findall(r"`([A-Za-z0-9._-]+)==([0-9][^`\s]*)`", setup)
    assert pins, "README's set-up states no version"
    env_versions = {}
    for env_file in ENV_FILES:
        for name, version, _ in lock.env_pins(env_file)[1]:
            env_versions.setdefault(name, set()).add(version)
    for name, version in pins:
        name = canonicalize_name(name)
        stated = f"README: {name}=={version}"
        assert LOCKED.get(name) == version, f"{stated}, requirements/lock.txt: {LOCKED.get(name)}"
        assert env_versions.get(name) == {version}, f"{stated}, envs/: {env_versions.get(name)}"
    script = (REPO / "scripts" / "setup.sh").read_text()
    assert re.search(r"^LOCK=requirements/lock\.txt$", script, re.MULTILINE) and '-c "$constraints"' in script
    # the CUDA release that docs/cluster.md gives drivers for is the one the torch wheel brings
    cuda = ".".join(CUDA_LOCKED["nvidia-cuda-runtime"].split(".")[:2])
    cluster = (REPO / "docs" / "cluster.md").read_text()
    assert f"CUDA {cuda}" in cluster, f"docs/cluster.md does not give the driver for CUDA {cuda}"
    assert f"torch=={LOCKED['torch']}" in cluster, f"docs/cluster.md does not name torch=={LOCKED['torch']}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_environment_installs_the_project(env_file: Path):
    # Snakemake runs <env>.post-deploy.sh in the new environment (a `-e ..` under pip: would be
    # resolved from .snakemake/conda/, where Snakemake copies the environment file).
    deploy = env_file.with_name(env_file.stem + ".post-deploy.sh")
    assert deploy.is_file(), f"{deploy.relative_to(REPO)} is missing: the project would not be installed"
    text = deploy.read_text()
    assert text.startswith("#!"), "Snakemake picks the interpreter from the shebang"
    assert re.search(r"pip install\b.*--no-deps.*--editable", text), (
        "expected pip install --no-deps --editable"
    )


def test_gpu_environment_has_a_cuda_build_of_pytorch():
    gpu_envs = {r.conda for r in RULES if r.conda is not None and "gpu" in r.conda.stem}
    assert gpu_envs, "no rule uses a GPU environment (envs/gpu.yaml)"
    for env_file in gpu_envs:
        pins = {name: version for name, version, _ in lock.env_pins(env_file)[1]}
        # PyPI's torch wheel for Linux is the CUDA build; it needs the CUDA runtime of requirements/cuda.txt
        assert pins.get("torch") == LOCKED["torch"], f"{env_file.name}: torch {pins.get('torch')}"
        lacking = set(CUDA_LOCKED) - set(pins)
        assert CUDA_LOCKED and not lacking, f"{env_file.name} lacks the CUDA runtime's {sorted(lacking)}"


# ----------------------------------------------------------------------------------- building them
def pip(python: Path, *args: str, pypi_only: bool = False) -> subprocess.Popen:
    """pip of `python`, started; `finish` waits for it."""
    env = lock.pypi_only_env() if pypi_only else dict(os.environ)
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(run: subprocess.Popen, timeout: int = 600) -> str:
    out, err = run.communicate(timeout=timeout)
    assert run.returncode == 0, f"{' '.join(run.args[3:])}:\n{err[-3000:]}"
    return out


def applies(marker: str | None) -> bool:
    return marker is None or Requirement(f"x; {marker}").marker.evaluate()


def requirements_file(path: Path, pins: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[Path, Future]:
    """Every environment built at once: each waits mostly on the network or the disk."""
    try:
        socket.create_connection((urlsplit(lock.PYPI).hostname, 443), timeout=10).close()
    except OSError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PyPI is unreachable: {error}")
        pytest.skip(f"PyPI is unreachable: {error}")
    pool = ThreadPoolExecutor(len(ENV_FILES))
    yield {env: pool.submit(build, env, tmp_path_factory.mktemp(env.stem)) for env in ENV_FILES}
    pool.shutdown(cancel_futures=True)


@pytest.mark.slow  # a fresh virtual environment per file, from PyPI: minutes
@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_environment_builds_from_pypi(env_file: Path, builds: dict[Path, Future]):
    builds[env_file].result()


def build(env_file: Path, tmp_path: Path) -> None:
    """The environment's pip: section as conda's pip installs it: resolved from PyPI alone to exactly
    its pins (the CUDA runtime only resolved), installed into a fresh virtual environment with this
    machine's PyPI set-up (torch's CPU build), then post-deploy.sh and the imports of its rules' code."""
    conda, pins = lock.env_pins(env_file)
    venv = tmp_path / "venv"
    # No ensurepip: the conda pip's version goes in directly, and nothing else (conda brings nothing else).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    finish(pip(Path(sys.executable), "--python", str(python), "install", "--quiet",
               f"pip=={conda['pip'].lstrip('=')}"))
    wanted = {name: version for name, version, marker in pins if applies(marker)}
    everything = requirements_file(tmp_path / "requirements.txt", wanted)
    # 1. PyPI resolves the whole section, CUDA runtime included, to its pins and nothing else
    #    (in the background: it waits on the network while step 2 unpacks).
    report = tmp_path / "report.json"
    resolving = pip(python, "install", "--dry-run", "--ignore-installed", "--quiet", "--index-url", lock.PYPI,
                    "--report", str(report), "-r", str(everything), pypi_only=True)
    # 2. Installed without the CUDA runtime, torch's CPU build in place of its CUDA one.
    cpu = {name: version for name, version, marker in pins if marker is None}
    cpu_torch = tmp_path / "cpu-torch.txt"
    cpu_torch.write_text(f"torch=={cpu['torch']}+cpu\n" if "torch" in cpu else "")
    try:
        finish(pip(python, "install", "--quiet", "--no-compile", "-c", str(cpu_torch),
                   "-r", str(requirements_file(tmp_path / "cpu.txt", cpu))))
        installed = {canonicalize_name(d["name"]): Version(d["version"]).public
                     for d in json.loads(finish(pip(python, "list", "--format", "json")))}
        assert {n: installed.get(n) for n in cpu} == cpu
        assert set(installed) - set(cpu) == {"pip"}, f"not pinned: {sorted(set(installed) - set(cpu) - {'pip'})}"
        finish(pip(python, "check"))
        finish(resolving)
    finally:
        if resolving.poll() is None:
            resolving.kill()
            resolving.wait()
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    assert resolved == wanted, (
        f"PyPI resolves {env_file.name} otherwise: unpinned {sorted(set(resolved) - set(wanted))}, "
        f"differing {sorted(n for n in wanted if resolved.get(n) != wanted[n])}"
    )

    # 3. Snakemake's post-deploy step installs the project; the rules' code imports.
    deploy = env_file.with_name(env_file.stem + ".post-deploy.sh")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "XLPROBE_REPO": str(REPO)}
    run = subprocess.run(["bash", str(deploy)], cwd=tmp_path, env=env, check=False, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"post-deploy: xlprobe from {REPO / 'src' / PACKAGE / '__init__.py'}" in run.stdout
    modules = set()
    for rule in SCRIPT_RULES:
        if rule.conda == env_file and rule.script.is_file():
            third_party, own = reached(rule.script, REPO / "src")
            modules |= set(third_party) | own
    assert modules
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    run = subprocess.run([str(python), "-c", code, *sorted(modules)], env={**env, "MPLBACKEND": "Agg"},
                         check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"importing {sorted(modules)} in {env_file.name}:\n{run.stderr[-3000:]}"


# ----------------------------------------------------------------------------------- the scanner itself
def test_scanner_follows_package_imports_and_skips_optional_ones(tmp_path: Path):
    src = tmp_path / "src"
    pkg = src / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import numpy\n")
    (pkg / "a.py").write_text("from . import b\nfrom .sub import c\nimport json\n")
    (pkg / "b.py").write_text("def f():\n    import torch\n    return torch\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text(
        "try:\n    import bitsandbytes\nexcept ImportError:\n    bitsandbytes = None\nimport yaml\n"
    )
    (pkg / "unused.py").write_text("import sklearn\n")
    script = tmp_path / "script.py"
    script.write_text(f"from {PACKAGE}.a import thing\nimport pandas as pd\nfrom snakemake import x\n")
    found = third_party_imports(script, src)
    assert set(found) == {"numpy", "torch", "yaml", "pandas"}

    env = tmp_path / "env.yaml"
    env.write_text(
        "channels: [conda-forge]\ndependencies:\n  - numpy =2.1.3\n  - pytorch-gpu =2.5.1\n"
        "  - pip:\n      - PyYAML==6.0.2\n"
    )
    assert set(missing_packages(env, script, src)) == {"pandas"}


def test_rule_parser_resolves_script_and_environment(tmp_path: Path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    smk = rules_dir / "x.smk"
    smk.write_text(
        'SCRIPTS = "workflow/scripts"\n\nif True:\n\n    rule one:\n        output: "a"\n'
        '        conda:\n            "../envs/e.yaml"\n        script:\n            f"../{SCRIPTS}/one.py"\n\n'
        'rule two:\n    output: "b"\n    shell: "touch {output}"\n'
    )
    rules = parse_rules([smk], smk_constants(smk.read_text()))
    assert [(r.name, r.action) for r in rules] == [("one", "script"), ("two", "shell")]
    assert rules[0].conda == (tmp_path / "envs" / "e.yaml").resolve()
    assert rules[0].script == (tmp_path / "workflow" / "scripts" / "one.py").resolve()
    assert rules[1].conda is None
