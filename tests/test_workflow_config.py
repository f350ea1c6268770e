import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xlprobe.workflow_config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "config/demo.yaml", "config/test.yaml", "config/showcase.yaml"])
def test_shipped_configs_are_valid(name, tmp_path):
    check_config(load(name), workdir=tmp_path, schema_path=SCHEMA)


def test_unknown_key_and_wrong_type_are_named():
    config = load("config/demo.yaml")
    config["probe"]["patiense"] = 3
    config["probe"]["k"] = "ten"
    with pytest.raises(ConfigError) as error:
        check_config(config, schema_path=SCHEMA)
    message = str(error.value)
    assert "probe.patiense: unknown key" in message
    assert "probe.k: 'ten' is not of type 'integer'" in message


def test_activation_site_is_named_and_checked_against_the_demo_models_depth():
    config = load("config/demo.yaml")
    config["activations"]["site"] = "attention"
    with pytest.raises(ConfigError, match=r"activations.site: 'attention' is not one of \['residual', 'mlp'\]"):
        check_config(config, schema_path=SCHEMA)
    # Residual layer 5 of a 4-block model is its last hidden state; there is no fifth MLP.
    config["activations"].update(site="mlp", layers=[4, 5])
    config["similarity"]["layers"] = [4, 5]
    with pytest.raises(ConfigError, match=r"activations.layers: \[5\] beyond the 4 blocks of models.demo-64 "):
        check_config(config, schema_path=SCHEMA)
    config["activations"]["site"] = "residual"
    check_config(config, schema_path=SCHEMA)


def test_unknown_top_level_key_is_named():
    config = load("config/demo.yaml")
    config["modles"] = {}
    with pytest.raises(ConfigError, match=r"modles: unknown key"):
        check_config(config, schema_path=SCHEMA)


def test_demo_step_must_be_a_saved_checkpoint():
    config = load("config/demo.yaml")
    model = next(iter(config["models"]))
    config["models"][model]["steps"].append(123)
    with pytest.raises(ConfigError, match=rf"models\.{model}\.steps: \[123\] are not in"):
        check_config(config, schema_path=SCHEMA)


def test_demo_treebank_must_be_a_demo_language_in_its_folder():
    config = load("config/demo.yaml")
    config["treebanks"]["xa"]["folder"] = "UD_Synth-A"
    config["treebanks"]["xq"] = {"folder": "UD_Synth-Xq", "language": "xq"}
    with pytest.raises(ConfigError) as error:
        check_config(config, schema_path=SCHEMA)
    message = str(error.value)
    assert "treebanks.xa.folder: the demo writes language 'xa' to 'UD_Synth-Xa', not 'UD_Synth-A'" in message
    assert "treebanks.xq.language: 'xq' is not a demo language" in message


def test_hub_model_needs_repo_and_final():
    config = load("config.yaml")
    broken = copy.deepcopy(config)
    del broken["models"]["bloom-560m"]["repo"]
    del broken["models"]["bloom-1b1"]["final"]
    with pytest.raises(ConfigError) as error:
        check_config(broken, schema_path=SCHEMA)
    assert "models.bloom-560m.repo: required for source 'hub'" in str(error.value)
    assert "models.bloom-1b1.steps: 'final' listed but models.bloom-1b1.final is not set" in str(error.value)


def test_missing_treebank_names_what_is_available(tmp_path):
    config = load("config.yaml")
    root = tmp_path / "ud"
    (root / "UD_English").mkdir(parents=True)
    (root / "UD_English" / "en-ud-dev.conllu").write_text("")
    (root / "UD_French-GSD").mkdir()
    (root / "UD_French-GSD" / "fr-ud-dev.conllu").write_text("")
    config["ud_root"] = str(root)
    config["treebanks"] = {
        "en": {"folder": "UD_English", "language": "en"},
        "fr": {"folder": "UD_French", "language": "fr"},
    }
    with pytest.raises(ConfigError) as error:
        check_config(config, schema_path=SCHEMA)
    message = str(error.value)
    assert "treebanks.fr.folder: no UD_French/*.conllu" in message
    assert "available: UD_English, UD_French-GSD" in message
    assert "treebanks.en" not in message


@pytest.mark.parametrize("fmt", [None, "conllu"])
def test_a_udpos_task_names_treebanks_of_the_config_with_or_without_format(fmt):
    # conllu is the default format of a udpos task: the check applies without `format` too.
    config = load("config/demo.yaml")
    task = config["transfer"]["tasks"]["pos"]
    task.pop("format")
    if fmt:
        task["format"] = fmt
    task["targets"] = ["xb", "xq"]
    with pytest.raises(ConfigError, match=r"transfer\.tasks\.pos: treebank 'xq' is not in treebanks"):
        check_config(config, schema_path=SCHEMA)


def test_the_dag_and_the_library_read_a_task_from_the_same_files(tmp_path):
    from xlprobe.inputs import task_data_files
    from xlprobe.transfer.data import load_task

    tables = {}
    for tb, upos in (("xa", "NOUN"), ("xb", "VERB")):
        tables[tb] = tmp_path / f"{tb}.tsv"
        rows = [f"{s}\t1\tw{s}\t{upos}" for s in range(20)]
        tables[tb].write_text("sentence_id\tword_id\tform\tupos\n" + "\n".join(rows) + "\n")
    task = {"name": "pos", "type": "udpos", "source": "xa", "targets": ["xb"]}  # no format
    files = task_data_files(task, lambda tb: str(tables[tb]))
    assert files == [str(tables["xa"]), str(tables["xb"])]
    data = load_task(task, files)
    assert {tag for _, tags in data.targets["xb"] for tag in tags} == {"VERB"}
    assert task_data_files({**task, "format": "hub"}, str) == []
    xnli = {"type": "xnli", "source": "en", "targets": ["fr"], "files": {"train": "t.tsv", "fr": "f.tsv"}}
    assert task_data_files(xnli, str) == ["t.tsv", "f.tsv"]  # tsv, the xnli default
    with pytest.raises(ValueError, match=r"transfer.tasks.pos.format: 'tsv' does not apply to udpos"):
        task_data_files({**task, "format": "tsv"}, str)


def test_similarity_must_measure_the_probed_layers():
    config = load("config/demo.yaml")
    config["similarity"]["layers"] = [1, 2]
    with pytest.raises(ConfigError, match=r"similarity.layers: \[1, 2\] lack the probed layer\(s\) \[4\]"):
        check_config(config, schema_path=SCHEMA)


def test_the_workflow_starts_without_importing_torch(tmp_path):
    # Every Snakemake start (each SLURM job starts one) parses rules/*.smk and runs the DAG's input
    # functions; torch, transformers and peft imported there cost seconds per start (10.8 s -> 3.1 s
    # for a dry run of config/test.yaml when they went).
    args = ["-n", "--quiet", "-d", str(tmp_path), "-s", str(REPO / "Snakefile"),
            "--configfile", str(REPO / "config" / "test.yaml")]
    code = "\n".join([
        "import sys",
        "from snakemake.cli import main",
        "try:",
        f"    main({args!r})",
        "except SystemExit as end:",
        "    assert not end.code, end.code",
        "print('LOADED', sorted({'torch', 'transformers', 'peft'} & set(sys.modules)))",
    ])
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout, done.stdout[-3000:]


def test_a_run_with_nothing_to_probe_stops_naming_the_key(tmp_path):
    from workflow_runs import snakemake

    from xlprobe.wordtable import build_word_table, probed_attributes

    config = load("config/test.yaml")
    config["words"]["min_count"] = 1000  # more tokens than the tiny treebank below has
    conllu = tmp_path / "tiny.conllu"
    conllu.write_text(
        "".join(
            f"# sent_id = s{i}\n1\tdogs\tdog\tNOUN\t_\tNumber=Plur\t0\troot\t_\t_\n"
            f"2\tcat\tcat\tNOUN\t_\tNumber=Sing\t1\tdep\t_\t_\n\n"
            for i in range(30)
        )
    )
    tables = []
    for tb, spec in config["treebanks"].items():
        words_out = tmp_path / config["results"] / "words" / f"{tb}.tsv"
        attributes_out = words_out.with_suffix(".attributes.tsv")
        build_word_table([conllu], tmp_path / "w.tsv", attributes_out, {"id": tb, **spec}, config["words"], 0)
        assert probed_attributes(attributes_out) == []
        tables.append(str(attributes_out.relative_to(tmp_path)))
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    # The word tables themselves are missing: the dry run reads the attribute tables that exist.
    done = snakemake(tmp_path, "-n", configfile=configfile, timeout=300)
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "no treebank has an attribute to probe" in message, message[-3000:]
    assert "words.min_count (1000)" in message
    assert all(table in message for table in tables), message[-3000:]


def test_schema_defaults_fill_absent_keys_and_only_those():
    from xlprobe.workflow_config import with_defaults

    config = load("config/test.yaml")
    del config["words"]["max_subwords"]
    config["words"]["min_count"] = 7
    with_defaults(config, SCHEMA)
    assert config["words"]["max_subwords"] == 2048
    assert config["words"]["min_count"] == 7  # given, kept
    assert "hf_cache" not in config  # no default in the schema, nothing invented


def test_a_config_without_an_optional_key_runs_with_the_schema_default(tmp_path):
    from workflow_runs import snakemake

    config = load("config/test.yaml")
    del config["words"]["max_subwords"]
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "-n", "-p", "--forceall", configfile=configfile, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "KeyError" not in done.stdout + done.stderr
