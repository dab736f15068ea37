"""The generated model card (``README.md`` of a model folder): architecture, data, fold results, citation.

The card is huggingface_hub's :class:`~huggingface_hub.ModelCard` rendered from :data:`CARD_TEMPLATE`
(Jinja) with the values of :func:`card_context`; its YAML header (:func:`card_data`) carries the Hub's
metadata: library, pipeline tag, dataset and the test results as ``model-index`` entries.
"""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import EvalResult, ModelCardData
from torch import nn

CITATION = """@inproceedings{sun2023maedfer,
  title     = {{MAE-DFER}: Efficient Masked Autoencoder for Self-supervised Dynamic Facial Expression Recognition},
  author    = {Sun, Licai and Lian, Zheng and Liu, Bin and Tao, Jianhua},
  booktitle = {Proceedings of the 31st ACM International Conference on Multimedia (MM '23)},
  year      = {2023},
  publisher = {ACM},
  doi       = {10.1145/3581783.3612365}
}"""

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

## Architecture

| | |
|---|---|
| maedfer model | `{{ arch }}` |
| constructor arguments | `{{ arch_kwargs_json }}` |
| parameters | {{ params }} |
| input clip | {{ input_text }} |
| output | {{ output }} |

## Training data

{{ data_text }}

{% if recipe_rows %}Recipe (the settings this model was trained with):

| setting | value |
|---|---|
{% for key, value in recipe_rows %}| {{ key }} | `{{ value }}` |
{% endfor %}
{% endif %}
## Results

{{ results_text }}

{{ fold_table }}

## How to use

```bash
# with maedfer installed (its repository's scripts/setup.sh)
maedfer predict --checkpoint {{ model_ref }} face_video.mp4 --annotate face_video_annotated.mp4
maedfer app --checkpoint {{ model_ref }}   # a local web page: upload a video, see the curves
```

```python
from maedfer.hub import MaedferModel

model = MaedferModel.from_pretrained("{{ model_ref }}")  # reads config.json and model.safetensors only
logits = model(clips)  # clips: (B, 3, {{ num_frames }}, {{ img_size }}, {{ img_size }})
```

Loading reads `config.json` (JSON) and `model.safetensors`; nothing is unpickled.

## Provenance

{{ provenance_text }}

## Citation

This is a reimplementation of MAE-DFER; if you use it, cite the paper:

```bibtex
{{ citation }}
```
"""


def _fmt(value: Any) -> str:
    return f"{100 * float(value):.2f}" if isinstance(value, int | float) else "-"


def fold_table(prov: dict[str, Any]) -> str:
    """The Markdown table of the test results of every fold (empty when none were recorded)."""
    results, this_fold = prov.get("fold_results") or [], prov.get("fold")
    if not results:
        return ""
    has_f1 = any(r.get("weighted_f1") is not None for r in results)
    head = ["fold", "test clips", "UAR", "WAR"] + (["weighted F1"] if has_f1 else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        name = f"{r.get('fold')} (this model)" if r.get("fold") == this_fold else str(r.get("fold"))
        cells = [name, str(r.get("test_clips", "-")), _fmt(r.get("uar")), _fmt(r.get("war"))]
        lines.append("| " + " | ".join(cells + ([_fmt(r.get("weighted_f1"))] if has_f1 else [])) + " |")
    mean = prov.get("mean")
    if mean and len(results) > 1:
        cells = [f"mean of {len(results)} folds", "", _fmt(mean.get("uar")), _fmt(mean.get("war"))]
        lines.append("| " + " | ".join(cells + ([_fmt(mean.get("weighted_f1"))] if has_f1 else [])) + " |")
    lines += ["", "UAR: unweighted average recall (mean of the per-class recalls); "
              "WAR: weighted average recall (accuracy)."]
    return "\n".join(lines)


def dataset_name(prov: dict[str, Any]) -> str | None:
    """How the card names the training data: ``dataset_label`` (the demo's), else the dataset's title."""
    return prov.get("dataset_label") or prov.get("dataset_title") or prov.get("dataset")


def _data_text(prov: dict[str, Any]) -> str:
    if not prov.get("dataset"):
        return ("Not recorded: the model file's run folder does not name its dataset; "
                "export with --dataset NAME to record it.")
    title = dataset_name(prov)
    parts = []
    if prov.get("stage") == "pretrain":
        parts.append(f"Pre-trained (masked autoencoding, no labels) on **{title}**.")
    elif prov.get("fold") is not None:
        parts.append(f"Fine-tuned on **{title}**, fold {prov['fold']}"
                     + (f" of {prov['num_folds']}" if prov.get("num_folds") else "")
                     + ": trained on the fold's training clips, tested on its test clips.")
    else:
        parts.append(f"Trained on **{title}**.")
    if prov.get("data_note"):
        parts.append(str(prov["data_note"]))
    if prov.get("init"):
        parts.append(f"Initialised from the pre-trained model `{prov['init']}`.")
    return " ".join(parts)


def _results_text(prov: dict[str, Any]) -> str:
    if not prov.get("fold_results"):
        return "No test results were recorded with this model (no metrics.json beside its model file)."
    where = dataset_name(prov) or "the dataset"
    return (f"The 2-clip test protocol on the test clips of each fold of {where}, percentages "
            f"(from each fold's metrics.json in `{prov.get('run_folder', 'the run folder')}`).")


def card_context(
    model: nn.Module,
    arch: str,
    arch_kwargs: dict[str, Any],
    class_names: list[str] | None,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The template's values for one model."""
    prov = dict(provenance or {})
    pe = getattr(getattr(model, "encoder", model), "patch_embed", None)
    is_classifier = hasattr(model, "head")
    frames, side = int(getattr(pe, "num_frames", 16)), int(getattr(pe, "img_size", 160))
    title_data = dataset_name(prov)
    fold = prov.get("fold")
    if is_classifier:
        title = f"MAE-DFER {arch}" + (f" fine-tuned on {title_data}" if title_data else "") + (
            f", fold {fold}" if fold is not None else "")
        summary = ("A dynamic facial expression recognition model (video clip of a face -> class probabilities), "
                   "trained with maedfer, a reimplementation of MAE-DFER (ACM MM 2023).")
        output = f"logits over {len(class_names or [])} classes: {', '.join(class_names or [])}"
    else:
        title = f"MAE-DFER {arch} (pre-trained, no classification head)"
        summary = ("A masked-autoencoder pre-trained video encoder of maedfer, a reimplementation of MAE-DFER "
                   "(ACM MM 2023); fine-tune it with `maedfer`'s finetune stage (`--init`).")
        output = "reconstruction of the masked patches (pre-training model)"
    recipe = prov.get("recipe") or {}
    keep = ("epochs", "batch_size", "total_batch", "base_lr", "layer_decay", "weight_decay", "drop_path",
            "head_init_scale", "mixup", "cutmix", "label_smoothing", "auto_augment", "precision", "seed")
    provenance_lines = [f"- {key}: `{prov[key]}`" for key in ("source", "run_folder", "profile", "experiment",
                                                              "maedfer_version") if prov.get(key)]
    return {
        "title": title,
        "summary": summary,
        "arch": arch,
        "arch_kwargs_json": json.dumps(arch_kwargs, sort_keys=True),
        "params": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
        "num_frames": frames,
        "img_size": side,
        "input_text": f"{frames} frames of {side} x {side} RGB, ImageNet-normalised: (B, 3, {frames}, {side}, {side})",
        "output": output,
        "data_text": _data_text(prov),
        "recipe_rows": [(k, recipe[k]) for k in keep if recipe.get(k) is not None],
        "results_text": _results_text(prov),
        "fold_table": fold_table(prov),
        "model_ref": prov.get("repo_id") or "path/to/this/folder",
        "provenance_text": "\n".join(provenance_lines) or "Not recorded.",
        "citation": CITATION,
    }


def card_data(base: ModelCardData, provenance: dict[str, Any], context: dict[str, Any]) -> ModelCardData:
    """The card's YAML header: the class's metadata plus this model's dataset and test results."""
    prov = provenance or {}
    data = ModelCardData(**base.to_dict())
    if prov.get("license"):
        data.license = prov["license"]
    dataset_id = prov.get("dataset_id") or prov.get("dataset")  # the demo's data are not the real dataset
    if dataset_id:
        data.datasets = [dataset_id]
        data.metrics = ["uar", "war"]
    this = next((r for r in prov.get("fold_results") or [] if r.get("fold") == prov.get("fold")), None)
    if this and dataset_id:
        data.model_name = context["title"]
        split = f"fold {prov['fold']} test" if prov.get("fold") is not None else "test"
        data.eval_results = [
            EvalResult(task_type="video-classification", dataset_type=dataset_id,
                       dataset_name=dataset_name(prov), dataset_split=split,
                       metric_type=key, metric_name=key.upper(), metric_value=round(float(this[key]), 6))
            for key in ("uar", "war") if this.get(key) is not None
        ]
    return data
