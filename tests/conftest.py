import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from workflow_runs import snakemake

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XLPROBE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the project (../shared/data), for tests of real file formats and
    treebanks only (anything the synthetic generator can make comes from `demo_data`).

    Tests using it skip where it is absent, except in CI (CI=true), where they fail: CI must run them.
    """
    if not SHARED_DATA.is_dir():
        message = f"shared data not found at {SHARED_DATA} (set XLPROBE_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true: a test that needs it fails instead of skipping")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> SimpleNamespace:
    """The synthetic generator's data for two demo languages, small (a second): `ud_root` with their
    treebanks, `text` (language -> pre-training text file), `parallel` (language -> aligned text file)."""
    from xlprobe.demo.synthetic import LANGUAGES, generate_demo_data

    root = tmp_path_factory.mktemp("demo-data")
    languages = list(LANGUAGES)[:2]
    generate_demo_data(
        ud_root=root / "ud", demo_dir=root, languages=languages, treebank_sentences=100,
        pretrain_sentences=300, parallel_sentences=40, seed=0,
    )
    return SimpleNamespace(
        root=root,
        ud_root=root / "ud",
        languages=languages,
        text={lang: root / "text" / f"{lang}.txt" for lang in languages},
        parallel={lang: root / "parallel" / f"{lang}.txt" for lang in languages},
    )


# The one tiny model every test shares (as transformers' BloomModelTester): hidden 32, 3 blocks, 4 heads.
TINY = {"hidden_size": 32, "n_layer": 3, "n_head": 4, "seed": 0}


@pytest.fixture(scope="session")
def tiny_bloom(demo_data, tmp_path_factory) -> SimpleNamespace:
    """A random BLOOM-architecture model (TINY) and a byte-level BPE tokenizer trained on the demo text.

    `path`: model and tokenizer files (a loadable checkpoint directory); `tokenizer_path`: the
    tokenizer alone; `model` (eval mode) and `tokenizer` in memory: tests that change them restore them.
    """
    from xlprobe.demo.pretrain import init_model, train_tokenizer

    root = tmp_path_factory.mktemp("tiny-bloom")
    tokenizer = train_tokenizer(list(demo_data.text.values()), root / "tokenizer", vocab_size=400)
    model = init_model(tokenizer, **TINY).eval()
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return SimpleNamespace(
        root=root, path=root / "model", tokenizer_path=root / "tokenizer", model=model, tokenizer=tokenizer
    )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run tiny models: extra threads only contend, above all on a shared, busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def hub_offline_flags_restored():
    """Loading the workflow in-process sets offline mode (rules/common.smk does, for its jobs): no test
    leaves it behind for the next, whose hub code would then refuse to go online."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The reduced demo (config/test.yaml) run locally once: (workdir, configfile, config, seconds).

    The workflow tests plan reruns against it and the SLURM test compares its results with it.
    Tests must not change its files.
    """
    workdir = tmp_path_factory.mktemp("demo")
    configfile = workdir / "config.yaml"
    shutil.copy(REPO / "config" / "test.yaml", configfile)
    result = snakemake(workdir, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, configfile, yaml.safe_load(configfile.read_text()), result.seconds


def built_hub_repos(tmp_path_factory, shared_data: Path) -> Path:
    """The local hub's repos (tests/localhub.py), built once per test run: the first pytest-xdist
    worker to ask builds them, under a lock, into the folder all workers' temporary folders share; the
    others wait for it. Building them is minutes of CPU (it trains tiny models)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    built = root / "hub-repos"
    with FileLock(str(root / "hub-repos.lock")):
        if not built.is_dir():
            partial = root / "hub-repos.partial"
            shutil.rmtree(partial, ignore_errors=True)
            t0 = time.monotonic()
            done = subprocess.run([sys.executable, str(REPO / "tests" / "localhub.py"), "build", str(partial),
                                   "--data", str(shared_data)], capture_output=True, text=True, timeout=1200,
                                  check=False)
            assert done.returncode == 0, done.stderr[-5000:]
            partial.rename(built)
            print(f"\nhub repos built: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return built


@pytest.fixture(scope="session")
def hub_server(shared_data, tmp_path_factory):
    """The local hub (scripts/hub-server: olah serving the repos of tests/localhub.py) on a copy of
    the repos built once per test run: tests add branches to what they serve.

    Tests that stop it leave it stopped; `local_hub` starts it again for the next test.
    """
    from hub_server import LocalHub

    directory = tmp_path_factory.mktemp("hub")
    shutil.copytree(built_hub_repos(tmp_path_factory, shared_data), directory / "mirrors", symlinks=True)
    hub = LocalHub(directory, shared_data)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def local_hub(hub_server):
    """The local hub, running."""
    if not hub_server.running():
        hub_server.start()
    return hub_server


# ----------------------------------------------------------------------------- SLURM
def cluster_state() -> str | None:
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    state = out.stdout.strip().split("\n")[0] if out.returncode == 0 else ""
    return state or None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A SLURM cluster that accepts jobs: one already running, or one started here."""
    if cluster_state() in ("idle", "mixed", "allocated"):
        yield None
        return
    if os.environ.get("XLPROBE_SLURM") != "1":
        pytest.skip("no SLURM cluster answers sinfo; XLPROBE_SLURM=1 starts one (root)")
    directory = tmp_path_factory.mktemp("slurm-cluster")
    t0 = time.monotonic()
    subprocess.run([str(REPO / "scripts" / "slurm-cluster"), "start", str(directory)], check=True, timeout=600)
    print(f"\nslurm-cluster start: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    try:
        yield directory
    finally:
        subprocess.run([str(REPO / "scripts" / "slurm-cluster"), "stop", str(directory)], check=True, timeout=120)


# ----------------------------------------------------------------------------- the inner loop
# What needs a whole workflow run, the local hub (its repos take minutes to build) or a SLURM cluster
# is slow: `pytest -m "not slow"` is the inner loop without them; scripts/test.sh (CI) runs everything.
SLOW_FIXTURES = {"demo_run", "hub_server", "local_hub", "slurm_cluster"}


# scripts/test.sh runs the tests on two pytest-xdist workers. A session fixture is built once per worker,
# and the machine has one SLURM cluster: every file whose tests use demo_run or slurm_cluster runs on one
# worker, the hub's users on one worker (a second hub would be safe, on its own port, but costs its
# build). Whole files, because the controller schedules by node id and never sees a test's fixtures.
XDIST_GROUPS = {
    "slurm-and-demo": {"test_faults.py", "test_slurm.py", "test_workflow.py"},
    "hub": {"test_checks_hub.py", "test_discovery.py", "test_hub.py", "test_hub_families.py",
            "test_hub_workflow.py", "test_model_shape.py"},
}


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: absent without it
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    group_of = {name: group for group, names in XDIST_GROUPS.items() for name in names}

    class FileGroupScheduling(LoadScopeScheduling):
        """LoadScope with a scope per group of files, and one per test elsewhere (like `--dist load`)."""

        def _split_scope(self, nodeid: str) -> str:
            return group_of.get(Path(nodeid.split("::")[0]).name, nodeid)

    return FileGroupScheduling(config, log)


def pytest_collection_modifyitems(items):
    strays = set()
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        if fixtures & {"demo_run", "slurm_cluster"} and item.path.name not in XDIST_GROUPS["slurm-and-demo"]:
            strays.add(item.path.name)
    if strays:
        raise pytest.UsageError(f"{sorted(strays)} use demo_run or slurm_cluster: add them to "
                                "XDIST_GROUPS['slurm-and-demo'] in tests/conftest.py")
