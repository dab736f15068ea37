"""Typed settings: resolved settings of both params files pinned, the arch_kwargs merge, flag precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from maedfer.settings import FinetuneConfig, PretrainConfig
from maedfer.settings.arch_names import PRETRAIN_ONLY_KEYS, classifier_arch, classifier_kwargs
from maedfer.settings.params import DatasetSpec, IngestSettings, Params
from maedfer.settings.resolve import merge_settings, resolve_config
from maedfer.workflow.profile import ParamsError, load_profile

ROOT = Path(__file__).resolve().parents[1]
PINNED = json.loads((ROOT / "tests" / "data" / "resolved_settings.json").read_text())


def _resolved(path: str) -> dict:
    p = load_profile(ROOT / path)
    out = {f"pretrain/{name}": p.pretrain_settings(name) for name in p.params.pretrain.runs}
    out.update({f"finetune/{exp}/{ds}": p.finetune_settings(exp, ds)
                for exp in p.params.finetune.experiments for ds in p.params.datasets})
    return json.loads(json.dumps(out))  # tuples -> lists, as pinned


@pytest.mark.parametrize("path", ["params.yaml", "params/demo.yaml"])
def test_resolved_settings_of_every_run_and_experiment_are_pinned(path):
    """Every pretraining and every experiment x dataset resolves exactly as before the params rewrite."""
    resolved = _resolved(path)
    assert sorted(resolved) == sorted(PINNED[path])
    for key, expected in PINNED[path].items():
        assert resolved[key] == expected, key


@pytest.mark.parametrize("path", ["params.yaml", "params/demo.yaml"])
def test_typed_configs_equal_the_resolved_settings(path):
    p = load_profile(ROOT / path)
    for name in p.params.pretrain.runs:
        cfg = p.pretrain_config(name)
        assert isinstance(cfg, PretrainConfig)
        pinned = PINNED[path][f"pretrain/{name}"]
        assert json.loads(json.dumps({k: getattr(cfg, k) for k in pinned})) == pinned
    for exp in p.params.finetune.experiments:
        for ds in p.params.datasets:
            cfg = p.finetune_config(exp, ds)
            assert isinstance(cfg, FinetuneConfig) and cfg.init is None and isinstance(cfg.crop_scale, tuple)
            pinned = {k: v for k, v in PINNED[path][f"finetune/{exp}/{ds}"].items() if k != "init"}
            assert json.loads(json.dumps({k: getattr(cfg, k) for k in pinned})) == pinned


def test_params_file_states_each_paper_setting_once():
    text = (ROOT / "params.yaml").read_text()
    body = "\n".join(line.split("#")[0] for line in text.splitlines())  # without comments
    assert body.count("mask_ratio") == 1 and body.count("[2, 5, 10]") == 1
    assert body.count("appearance_weight: 0.5") == 1


def test_run_arch_kwargs_merge_into_the_defaults_even_with_arch():
    defaults = {"arch": "pretrain_a", "arch_kwargs": {"region_size": [2, 5, 10], "mask_ratio": 0.9}, "epochs": 50}
    run = {"arch": "pretrain_vit", "arch_kwargs": {"region_size": None, "appearance_weight": 1.0}}
    merged = merge_settings(defaults, run)
    assert merged == {"arch": "pretrain_vit", "arch_kwargs": {"mask_ratio": 0.9, "appearance_weight": 1.0},
                      "epochs": 50}
    assert defaults["arch_kwargs"] == {"region_size": [2, 5, 10], "mask_ratio": 0.9}  # not modified
    assert merge_settings(defaults, {"arch": "pretrain_b"})["arch_kwargs"] == defaults["arch_kwargs"]


def test_experiment_that_sets_arch_keeps_the_default_arch_kwargs(tmp_path):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["finetune"]["experiments"]["tiny_scratch"] = {"pretraining": None, "arch": "lgi_former_tiny_patch16_160",
                                                      "arch_kwargs": {"pool": "local"}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    s = load_profile(path).finetune_settings("tiny_scratch", "ferv39k")
    assert s["arch"] == "lgi_former_tiny_patch16_160" and s["stride"] == 1 and s["init"] is None
    assert s["arch_kwargs"] == {"region_size": [2, 5, 10], "pool": "local"}


def test_model_name_facts():
    assert classifier_arch("pretrain_lgi_former_base_patch16_160") == "lgi_former_base_patch16_160"
    with pytest.raises(ValueError, match="not a pre-training model name"):
        classifier_arch("vit_base_patch16_160")
    assert classifier_kwargs({"region_size": [2, 5, 10], **dict.fromkeys(PRETRAIN_ONLY_KEYS, 1)}) == {
        "region_size": [2, 5, 10]}


def test_typed_params_sections():
    params = load_profile(ROOT / "params.yaml").params
    assert isinstance(params, Params) and params.profile == "paper"
    assert params.datasets["ferv39k"] == DatasetSpec(adapter="ferv39k", root="data/raw/ferv39k", folds=(1,), stride=1,
                                                     ingest=IngestSettings(size=160, workers=8, store_size="source",
                                                                           jpeg_quality=95))
    assert params.datasets["voxceleb2"].folds == () and params.datasets["voxceleb2"].stride == 4
    assert params.pretrain.resources.gpus == 4 and params.finetune.resources.cpus == 12
    assert params.tables["table5"].datasets == {"dfew": "all"} and params.tables["table2"].datasets["dfew"] == (1,)
    assert params.figures.fig4.ratios == (0.75, 0.9) and params.figures.fig5.fold == 1
    assert params.mlflow.experiment == "maedfer-paper" and params.mlflow.tracking is True
    demo = load_profile(ROOT / "params/demo.yaml").params
    assert demo.demo_data.out == "data/demo" and demo.demo_data.args["pretrain_clips"] == 300
    assert demo.datasets["dfew"].ingest.workers == 0


def test_precedence_explicit_over_file_over_default():
    assert resolve_config(IngestSettings) == IngestSettings()
    assert resolve_config(IngestSettings, {"size": 112, "workers": 8}).size == 112
    # an explicit value equal to the default still wins over the params file
    cfg = resolve_config(IngestSettings, {"size": 112, "workers": 8}, {"size": 160})
    assert cfg.size == 160 and cfg.workers == 8
    assert resolve_config(FinetuneConfig, {"crop_scale": [0.6, 1.0]}).crop_scale == (0.6, 1.0)


def test_unknown_names_are_one_line_params_errors():
    p = load_profile(ROOT / "params.yaml")
    with pytest.raises(ParamsError, match=r"params.yaml: no pre-training 'nope' in pretrain.runs \(mae_dfer, "):
        p.pretrain_config("nope")
    with pytest.raises(ParamsError, match="no experiment 'nope' in finetune.experiments"):
        p.finetune_config("nope", "dfew")
    with pytest.raises(ParamsError, match="no dataset 'nope' in datasets"):
        p.finetune_config("mae_dfer", "nope")


def test_training_stages_take_explicit_flags_equal_to_the_default_over_the_params_file():
    """The demo file sets epochs 40 and batch 16 (pretrain), batch 8 and mixup 0 (finetune); flags typed with the
    dataclass defaults (50, 32, 0.8) still win, untyped ones come from the file."""
    from pipeline import finetune, pretrain

    demo = load_profile(ROOT / "params/demo.yaml")
    args = pretrain.build_parser().parse_args(["--params", "params/demo.yaml", "--pretraining", "mae_dfer",
                                               "--index", "i", "--out", "o", "--epochs", "50", "--batch-size", "32"])
    cfg = pretrain.resolve_config_from_args(args, demo)
    assert (cfg.epochs, cfg.batch_size, cfg.warmup_epochs, cfg.base_lr) == (50, 32, 3, 3.0e-2)
    args = pretrain.build_parser().parse_args(["--index", "i", "--out", "o", "--epochs", "7"])
    assert pretrain.resolve_config_from_args(args, None) == PretrainConfig(epochs=7)
    ft = ["--params", "params/demo.yaml", "--experiment", "mae_dfer", "--dataset", "dfew", "--fold", "1",
          "--index", "i", "--out", "o"]
    args = finetune.build_parser().parse_args([*ft, "--init", "m.pt", "--batch-size", "32", "--mixup", "0.8",
                                               "--auto-augment", "none"])
    cfg = finetune.resolve_config_from_args(args, demo)
    assert (cfg.batch_size, cfg.mixup, cfg.epochs, cfg.init, cfg.auto_augment) == (32, 0.8, 12, "m.pt", None)
    assert cfg.arch == "lgi_former_test" and cfg.crop_scale == (0.6, 1.0)
    args = finetune.build_parser().parse_args(ft)
    with pytest.raises(ValueError, match="starts from a pre-training; pass its model.pt with --init"):
        finetune.resolve_config_from_args(args, demo)


@pytest.mark.parametrize("stage, argv, message", [
    ("pretrain", ["--params", "params/demo.yaml", "--pretraining", "nope", "--index", "i", "--out", "o"],
     "pretrain: error: params/demo.yaml: no pre-training 'nope' in pretrain.runs (mae_dfer)"),
    ("pretrain", ["--index", "i", "--out", "o", "--arch-kwargs", "{bad"], "pretrain: error: --arch-kwargs: not valid"),
    ("finetune", ["--params", "params/demo.yaml", "--dataset", "dfew", "--fold", "1", "--index", "i", "--out", "o"],
     "finetune: error: --params and --experiment go together"),
    ("ingest", ["--params", "params/demo.yaml", "--dataset", "mafw", "--root", ".", "--out", "o"],
     "ingest: error: params/demo.yaml: no dataset 'mafw' in datasets (voxceleb2, dfew)"),
    ("aggregate", ["--out", "o", "--no-tracking"], "aggregate: error: no table given"),
    ("evaluate", ["--checkpoint", "c", "--index", "i", "--out", "o", "--stride", "x"],
     "evaluate: error: argument --stride: invalid int value: 'x' (see --help)"),
    ("figures", ["curves", "--runs", "nowhere", "--out", "o.png", "--params", "missing.yaml"],
     "figures curves: error: missing.yaml: params file not found"),
    ("acquire", ["--dataset", "ravdess", "--source", "s"], "acquire: error: the following arguments are required"),
])
def test_every_stage_reports_a_user_error_in_one_line_with_exit_2(stage, argv, message, capsys):
    import importlib

    module = importlib.import_module(f"pipeline.{stage}")
    try:
        code = module.main(argv)
    except SystemExit as exc:  # argparse errors exit from the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
