"""Fault injection: damaged files, impossible settings, bad treebanks and killed jobs are caught early,
named, and leave nothing behind that a later run does not remove (docs/faults.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xxhash
import yaml
from workflow_runs import REPO, result_files, same_result, snakemake

from xlprobe import integrity
from xlprobe.integrity import DamagedFileError
from xlprobe.io import write_json
from xlprobe.treebank import CoNLLUError, read_conllu
from xlprobe.workflow_config import ConfigError, check_config

SCHEMA = REPO / "config" / "schema.yaml"


def flip_byte(path: Path, offset: int = -10) -> None:
    """One byte changed in place: same size, other content."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def change_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def truncate(path: Path, keep: int | None = None) -> None:
    os.truncate(path, keep if keep is not None else path.stat().st_size // 2)


# ----------------------------------------------------------------------------- records
def test_file_record_reads_in_chunks_and_finds_truncation_and_flipped_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "_CHUNK", 1000)  # several chunks for a small file
    path = tmp_path / "layer2.npy"
    np.save(path, np.arange(5000, dtype=np.float16).reshape(100, 50))
    record = integrity.file_record(path)
    assert record == {"size": path.stat().st_size, "xxh3_128": xxhash.xxh3_128_hexdigest(path.read_bytes())}
    assert integrity.file_problem(path, record) is None

    flip_byte(path)
    assert "checksum differs" in integrity.file_problem(path, record)
    truncate(path, 333)
    assert integrity.file_problem(path, record) == f"333 bytes, {record['size']} recorded (damaged)"
    path.unlink()
    with pytest.raises(DamagedFileError, match=rf"{path}: missing; rebuild it with: snakemake --cores 1 --force {path}"):
        integrity.check_file(path, record, integrity.rebuild_command(path))


def test_a_sealed_json_finds_a_changed_number_and_a_truncation(tmp_path):
    path = tmp_path / "xa.json"
    result = {"k": 5, "attributes": {"Number": {"selected": [3, 1, 4], "dev_score": [0.1, 1 / 3]}},
              "value": np.float32(0.25)}
    integrity.write_sealed_json(path, result)
    assert integrity.read_sealed_json(path) == json.loads(json.dumps({**result, "value": 0.25}))

    path.write_text(path.read_text().replace("0.1,", "0.2,"))
    with pytest.raises(DamagedFileError, match=rf"{path}: content differs .* --force {path}"):
        integrity.read_sealed_json(path)
    integrity.write_sealed_json(path, result)
    truncate(path)
    assert integrity.sealed_problem(path).startswith("not valid JSON")
    # a JSON result without a seal has nothing to compare
    write_json(path, result)
    assert integrity.sealed_problem(path) is None


def test_a_damaged_cached_checkpoint_names_the_blob_to_remove_and_the_marker_to_rebuild(tmp_path):
    snapshot, blobs = tmp_path / "snapshots" / "abc123", tmp_path / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    (blobs / "e7a9").write_bytes(b"weights" * 100)
    (snapshot / "model.safetensors").symlink_to(blobs / "e7a9")
    marker = tmp_path / "resources/checkpoints/m/100.json"
    write_json(marker, {"source": "hub", "path": str(snapshot),
                        "files": integrity.folder_records(snapshot, ["model.safetensors"])})
    integrity.check_checkpoint(marker)
    truncate(blobs / "e7a9")
    with pytest.raises(DamagedFileError) as error:
        integrity.check_checkpoint(marker)
    assert str(error.value) == (
        f"{snapshot}/model.safetensors: 350 bytes, 700 recorded (damaged); rebuild it with: "
        f"rm -f {blobs}/e7a9 {snapshot}/model.safetensors && snakemake --cores 1 --force {marker}"
    )
    write_json(marker, {**integrity.read_record_json(marker), "source": "local"})
    with pytest.raises(DamagedFileError, match="restore .*model.safetensors from where the local checkpoint"):
        integrity.check_checkpoint(marker)


# ----------------------------------------------------------------------------- impossible settings
def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def config_errors(config: dict, workdir: Path | str = ".") -> str:
    with pytest.raises(ConfigError) as error:
        check_config(config, workdir=workdir, schema_path=SCHEMA)
    return str(error.value)


def test_probe_k_at_the_width_of_a_demo_model_is_named():
    config = load("config/test.yaml")
    config["probe"]["k"] = 48
    message = config_errors(config)
    assert "probe.k: 48 is not below the 48 neurons of models.demo-48's residual activations" in message
    assert "models.demo-32's" in message  # 48 > 32 as well
    config["probe"]["k"] = 31
    check_config(config, schema_path=SCHEMA)
    # the mlp site is 4 x wider: k = 100 fits demo-32's 128 MLP neurons
    config["probe"]["k"] = 100
    config["activations"]["site"] = "mlp"
    config["similarity"]["layers"] = [1, 2]
    check_config(config, schema_path=SCHEMA)


def test_a_layer_beyond_the_depth_is_named_for_demo_local_and_cached_checkpoints(tmp_path):
    config = load("config/test.yaml")
    config["activations"]["layers"] = [3, 9]  # 2 blocks: residual layers 1..3
    config["similarity"]["layers"] = [3, 9]
    message = config_errors(config)
    assert "activations.layers: [9] beyond the 2 blocks of models.demo-32 (layers 1..3" in message

    # A local checkpoint's depth and width come from its config.json.
    folder = tmp_path / "ckpt" / "100"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 16, "n_layer": 4}))
    config = load("config/test.yaml")
    config["models"] = {"mine": {"source": "local", "path": "ckpt/{step}", "steps": [100]}}
    config["activations"]["layers"] = [6]
    config["similarity"]["layers"] = [6]
    config["probe"]["k"] = 16
    config["transfer"]["tasks"] = {}
    message = config_errors(config, tmp_path)
    assert "activations.layers: [6] beyond the 4 blocks of models.mine (layers 1..5" in message
    assert "probe.k: 16 is not below the 16 neurons of models.mine's residual activations" in message

    # A hub checkpoint already in the cache: its marker names the folder.
    config["models"] = {"hubbed": {"source": "hub", "repo": "someone/unknown", "revision": "step{step}",
                                   "steps": [100]}}
    write_json(tmp_path / "resources/checkpoints/hubbed/100.json", {"path": str(folder)})
    assert "beyond the 4 blocks of models.hubbed" in config_errors(config, tmp_path)


def test_an_unknown_language_code_needs_the_generic_opt_in(tmp_path):
    config = load("config.yaml")
    config["treebanks"]["fr"]["language"] = "fe"
    message = config_errors(config, tmp_path)
    assert "treebanks.fr.language: 'fe' has no UniMorph rules" in message
    assert "generic_languages" in message
    config["generic_languages"] = ["fe"]
    check_config(config, workdir=tmp_path, schema_path=SCHEMA)


def test_dry_runs_stop_naming_the_key(tmp_path):
    config = load("config/test.yaml")
    config["probe"]["k"] = 500
    config["activations"]["layers"] = [9]
    config["similarity"]["layers"] = [9]
    configfile = tmp_path / "demo.yaml"
    configfile.write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "-n", configfile=configfile, timeout=300)
    assert done.returncode != 0
    assert "probe.k: 500 is not below the 32 neurons of models.demo-32" in done.stdout + done.stderr
    assert "activations.layers: [9] beyond the 2 blocks of models.demo-32" in done.stdout + done.stderr

    config = load("config.yaml")
    config["treebanks"]["fr"]["language"] = "fe"
    configfile.write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "-n", configfile=configfile, timeout=300)
    assert done.returncode != 0
    assert "treebanks.fr.language: 'fe' has no UniMorph rules" in done.stdout + done.stderr


# ----------------------------------------------------------------------------- bad treebanks
def test_a_byte_that_is_not_utf8_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "x-ud-train.conllu"
    good = "# sent_id = 1\n1\tle\tle\tDET\t_\t_\t0\troot\t_\t_\n\n"
    path.write_bytes(good.encode() * 3 + b"# sent_id = 4\n1\tl\xffe\tle\tDET\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(CoNLLUError, match=rf"{path}:11: not UTF-8 \(byte 0xff at column 4\)"):
        list(read_conllu(path))


def test_an_empty_treebank_has_nothing_to_probe_and_says_so(tmp_path, caplog):
    from xlprobe.wordtable import build_word_table, probed_attributes

    (tmp_path / "x-ud-train.conllu").write_text("")
    words = {"split": {"train": 0.8, "dev": 0.1, "test": 0.1}, "min_count": 20}
    summary = build_word_table([tmp_path / "x-ud-train.conllu"], tmp_path / "w.tsv", tmp_path / "a.tsv",
                               {"id": "xx", "folder": "UD_X", "language": "en"}, words, 0)
    assert summary["tokens"] == 0 and summary["tokens_per_split"] == [0, 0, 0]
    assert probed_attributes(tmp_path / "a.tsv") == []
    assert "treebank xx: no words in" in caplog.text and "nothing to probe" in caplog.text


# ----------------------------------------------------------------------------- debris
def test_pretraining_removes_an_earlier_attempts_folder_and_keeps_the_umask(demo_data, tiny_bloom, tmp_path):
    from xlprobe.demo.pretrain import pretrain

    models = tmp_path / "models"
    leftover = models / ".toy.building-k1ll3d"
    (leftover / "0").mkdir(parents=True)
    (leftover / "0" / "model.safetensors").write_bytes(b"half")
    old = os.umask(0o022)
    try:
        pretrain(tiny_bloom.tokenizer_path, list(demo_data.text.values()), models / "toy", hidden_size=16,
                 n_layer=1, n_head=2, train_steps=4, save_steps=[0, 4], batch_size=4, seq_len=16)
    finally:
        os.umask(old)
    assert sorted(p.name for p in models.iterdir()) == ["toy"]
    assert (models / "toy").stat().st_mode & 0o777 == 0o755
    sums = json.loads((models / "toy" / integrity.CHECKSUMS).read_text())["files"]
    assert {"0/model.safetensors", "4/model.safetensors", "training_log.tsv"} <= set(sums)
    assert integrity.checkpoint_problems(models / "toy") == {}
    flip_byte(models / "toy" / "4" / "model.safetensors")
    with pytest.raises(DamagedFileError, match=r"4/model.safetensors: xxh3_128 checksum differs .* --force "):
        integrity.check_checkpoint(models / "toy")


# ----------------------------------------------------------------------------- the workflow
def copy_run(demo_run, tmp_path: Path) -> tuple[Path, Path, dict]:
    """A copy of the clean demo run (times kept) that a test may damage."""
    workdir, configfile, config, _ = demo_run
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    return copy, copy / configfile.name, config


def verify(workdir: Path, results: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xlprobe.cli", "verify", results, *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300, check=False)


def test_verify_names_a_results_folder_that_is_not_there(tmp_path):
    done = verify(tmp_path, "results/nowhere")
    assert done.returncode == 2
    assert done.stderr == "xlprobe verify: results/nowhere: no such results folder\n"


@pytest.mark.slow
def test_verify_names_each_damaged_file_and_the_rebuild_restores_the_clean_results(demo_run, tmp_path):
    workdir, configfile, config = copy_run(demo_run, tmp_path)
    results = config["results"]
    clean = verify(workdir, results)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 damaged or missing" in clean.stdout

    activation = f"{results}/activations/demo-32/400/xa/layer2.npy"
    meta = f"{results}/activations/demo-48/0/xb/meta.json"
    probe = f"{results}/probes/demo-48/400/layer2/xc.json"
    weights = f"{config['demo']['dir']}/models/demo-32/400/model.safetensors"
    truncate(workdir / activation, 333376 // 4)
    truncate(workdir / meta)
    change_text(workdir / probe, '"k": 5', '"k": 4')
    flip_byte(workdir / weights)
    damaged = verify(workdir, results, "--configfile", "config.yaml")
    assert damaged.returncode == 1
    force = "snakemake --cores 1 --configfile config.yaml --force"
    for path, rebuild in [(activation, f"{force} {activation}"), (meta, f"{force} {meta}"),
                          (probe, f"{force} {probe}"),
                          (weights, f"{force} {config['demo']['dir']}/models/demo-32")]:
        assert f"DAMAGED {path}:" in damaged.stdout, damaged.stdout
        assert f"rebuild: {rebuild}\n" in damaged.stdout
    assert "4 damaged or missing" in damaged.stdout
    # Snakemake itself names a truncated dump at its start (sizes only), though its time stamps are fine.
    dry = snakemake(workdir, "-n", configfile=configfile)
    assert f"{activation}: {333376 // 4} bytes, " in dry.stdout + dry.stderr

    # The consumers stop before use, naming the file and the command.
    from xlprobe.integrity import check_checkpoint
    from xlprobe.overlap import compute_overlap
    from xlprobe.probing import probe_treebank

    os.chdir(workdir)
    try:
        with pytest.raises(DamagedFileError, match=rf"{activation}: .* recorded \(damaged\); rebuild it with"):
            probe_treebank(f"{results}/words/xa.tsv", f"{results}/words/xa.attributes.tsv", activation,
                           f"{results}/activations/demo-32/400/xa/meta.json", tmp_path / "probe.json",
                           probe_config=config["probe"], seed=0)
        with pytest.raises(DamagedFileError, match=rf"{probe}: content differs"):
            compute_overlap([probe.replace("xc", "xa"), probe], tmp_path / "overlap.tsv", k=5)
        with pytest.raises(DamagedFileError, match=r"demo-32/400/model.safetensors: xxh3_128 checksum differs"):
            check_checkpoint(f"{config['demo']['dir']}/models/demo-32")
    finally:
        os.chdir(REPO)

    # Each printed command rebuilds its file; the results equal the clean run's.
    for line in damaged.stdout.splitlines():
        if line.strip().startswith("rebuild: "):
            # the helper passes the copy's config file itself
            command = line.strip().removeprefix("rebuild: snakemake").replace("--configfile config.yaml", "").split()
            done = snakemake(workdir, *command, configfile=configfile)
            assert done.returncode == 0, done.stderr[-3000:]
    assert verify(workdir, results).returncode == 0
    reference = demo_run[0] / results
    for relative in result_files(workdir / results):
        assert same_result(workdir / results / relative, reference / relative), relative


@pytest.mark.slow
def test_a_killed_pretraining_leaves_nothing_the_rerun_keeps(demo_run, tmp_path):
    reference, _, config, _ = demo_run
    workdir = tmp_path / "work"
    demo_dir = config["demo"]["dir"]
    shutil.copytree(reference / demo_dir, workdir / demo_dir, ignore=shutil.ignore_patterns("models"))
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = f"{demo_dir}/models/demo-32"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(configfile), "--cores", "1", target]
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    models = workdir / demo_dir / "models"
    deadline = time.monotonic() + 600
    try:
        # wait until the first checkpoint is written into the hidden build folder
        while not list(models.glob(".demo-32.building-*/0/*.safetensors")):
            assert run.poll() is None and time.monotonic() < deadline, "no pre-training started"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert list(models.glob(".demo-32.*")), "the kill came after the pre-training had finished"
    assert not (models / "demo-32").exists()

    assert snakemake(workdir, "--unlock", configfile=configfile).returncode == 0
    resumed = snakemake(workdir, "--cores", "1", target, configfile=configfile)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in models.iterdir()) == ["demo-32"]
    umask = os.umask(0)
    os.umask(umask)
    assert (models / "demo-32").stat().st_mode & 0o777 == 0o777 & ~umask
    # the same weights as the clean run's, file by file
    sums = json.loads((models / "demo-32" / integrity.CHECKSUMS).read_text())["files"]
    assert sums == json.loads((reference / target / integrity.CHECKSUMS).read_text())["files"]
