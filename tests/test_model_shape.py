"""Model shapes from config.json: against the models transformers builds, and where config.json is read."""

from __future__ import annotations

import pytest
from test_costs import BLOOM_560M, seed_hf_cache

from xlprobe.model_shape import ShapeUnknown, model_config, shape_of

# Small configs of three families: BLOOM (MLP 4 x hidden, no width field), GPT-NeoX (untied head), and
# Llama (gated MLP, grouped key/value heads).
FAMILIES = {
    "bloom": {"model_type": "bloom", "hidden_size": 256, "n_layer": 3, "n_head": 4, "vocab_size": 3000},
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
                 "intermediate_size": 1024, "vocab_size": 3000, "tie_word_embeddings": False},
    "llama": {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 688, "vocab_size": 3000, "tie_word_embeddings": False},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shape_matches_the_model_transformers_builds(family):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(FAMILIES[family])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shape = shape_of(FAMILIES[family])
    assert shape.hidden == 256 and shape.blocks == 3
    mlp = next(m for name, m in model.named_modules() if name.endswith(("dense_4h_to_h", "down_proj")))
    assert shape.mlp_width == mlp.in_features
    # biases and norms are left out of the estimate: within 2% of the real count
    assert shape.parameters == pytest.approx(sum(p.numel() for p in model.parameters()), rel=0.02)


def test_config_json_is_read_from_the_cache_at_any_configured_step(tmp_path):
    seed_hf_cache(tmp_path, "org/bloom-intermediate", "global_step2000", BLOOM_560M)
    spec = {"source": "hub", "repo": "org/bloom-intermediate", "revision": "global_step{step}"}
    assert model_config("b", spec, ["1000", "2000"], cache_dir=tmp_path) == BLOOM_560M


def test_no_config_json_offline_names_the_repo_and_revision(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {"source": "hub", "repo": "org/absent", "revision": "step{step}"}
    with pytest.raises(ShapeUnknown, match=r"org/absent@step5: config.json not in the cache and the hub is offline"):
        model_config("a", spec, ["5"], cache_dir=tmp_path)


def test_a_demo_models_shape_is_its_pretrain_spec():
    spec = {"source": "demo", "pretrain": {"hidden_size": 64, "n_layer": 4, "n_head": 4}}
    shape = shape_of(model_config("d", spec, ["0"], demo={"tokenizer_vocab_size": 1000}))
    assert (shape.hidden, shape.blocks, shape.mlp_width) == (64, 4, 256)
    assert shape.parameters == 1000 * 64 + 4 * 12 * 64**2


def test_plan_reads_the_hub_models_config_json_from_the_hub_then_the_cache(local_hub, tmp_path):
    """config/hub.yaml's tiny BLOOMs, known to no table: their config.json comes from the (local) hub into
    the run's cache; offline, the plan reads it there."""
    import subprocess
    import sys

    from workflow_runs import REPO

    def plan_rows(env):
        done = subprocess.run(
            [sys.executable, "-m", "xlprobe.cli", "plan", "--config", str(REPO / "config" / "hub.yaml"),
             "--directory", str(tmp_path), "--markdown"],
            capture_output=True, text=True, check=False, env={**env, "PYTHONPATH": str(REPO / "src")},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return {cells[0]: cells for cells in (
            [c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines() if line.startswith("| "))}

    online = plan_rows(local_hub.env(cache=tmp_path))
    dumps = online["dump_activations"]
    assert dumps[4] != "-" and "config.json" not in dumps[8], dumps  # GPU-hours estimated, no note
    snapshots = (tmp_path / "resources" / "hf-cache").glob("models--*/snapshots/*/*")
    fetched = sorted(f"{path.parents[2].name}/{path.name}" for path in snapshots)
    # one config.json per model family (the first step's), nothing else
    assert fetched == ["models--tiny-bigscience--bloom-32-intermediate/config.json",
                       "models--tiny-bigscience--bloom-48-intermediate/config.json"]
    offline = plan_rows(local_hub.env(offline=True, cache=tmp_path))
    assert offline["dump_activations"] == dumps
