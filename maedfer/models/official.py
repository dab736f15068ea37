"""Load the authors' released MAE-DFER checkpoints (state dict under ``"model"``).

Supported: the pre-trained LGI-Former encoder + decoder, fine-tuned LGI-Former classifiers
(DFEW/FERV39k 7 classes, MAFW 11 classes, any size and Table 3 variant) and VideoMAE ViT
classifiers / pre-training models at 160 px. Every official key is consumed and every key of
our model is filled, or a :class:`ConversionError` says which ones are not.

Key mapping (official -> ours), LGI-Former blocks:
    first_attn_norm0 -> intra.norm          first_attn.{q,kv}.weight -> intra.attn.qkv.weight (fused)
    second_attn_norm0 -> inter.norm         second_attn.{q,kv}.weight -> inter.attn.qkv.weight (fused)
    third_attn_norm0 -> lgi.norm_q (local tokens)    third_attn_norm1 -> lgi.norm_kv (representative tokens)
    third_attn.{q,kv,proj,q_bias,v_bias} -> lgi.attn.*
    norm2 -> norm_mlp                       lg_region_tokens -> region_tokens
ViT blocks, the decoder, patch embedding, fc_norm and head keep their names (under ``encoder.``
for encoder parts).

Pre-training target: the decoder head is tubelet x patch x patch x 3 wide (1,536) for both the
MAE-DFER joint target and the original VideoMAE target, so the shapes cannot tell them apart.
The authors' training arguments, saved beside the weights (``args``), can: without
``use_frame_diff_as_target`` the run reconstructed the whole normalised tubelet (``target="videomae"``);
with it, Eq. 2's lambda is ``1 - target_diff_weight`` (0.5 when unset). Without ``args`` the
target is ``"mae_dfer"`` unless ``target=`` says otherwise. Decoder heads come from the decoder
width for the widths of :data:`HEADS_BY_DIM`; any other width needs ``decoder_heads``.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maedfer.models.registry import create_model
from maedfer.models.targets import TARGETS

log = logging.getLogger(__name__)

HEADS_BY_DIM = {256: 4, 384: 6, 512: 8, 768: 12}
LGI_SIZE_BY_DIM = {256: "tiny", 384: "small", 512: "base"}
# Region count -> region size on the 8x10x10 grid, where unambiguous (Table 4).
REGION_BY_COUNT = {8: (2, 5, 10), 16: (1, 5, 10), 20: (2, 2, 10)}

# LGI-Former block parts, official name -> ours (the representative tokens are top-level keys).
_LGI_BLOCK_PARTS: tuple[tuple[str, str], ...] = (
    ("first_attn_norm0", "intra.norm"),
    ("first_attn", "intra.attn"),
    ("second_attn_norm0", "inter.norm"),
    ("second_attn", "inter.attn"),
    ("third_attn_norm0", "lgi.norm_q"),
    ("third_attn_norm1", "lgi.norm_kv"),
    ("third_attn", "lgi.attn"),
    ("norm2", "norm_mlp"),
)
_LGI_TOKENS = ("lg_region_tokens", "region_tokens")


def _renames(pairs: tuple[tuple[str, str], ...], tokens: tuple[str, str]) -> list[tuple[str, str]]:
    """(pattern, replacement) regexes that rename ``tokens[0]`` and block parts ``a`` to ``tokens[1]`` and ``b``."""
    block = [(rf"^blocks\.(\d+)\.{re.escape(a)}\.", rf"blocks.\1.{b}.") for a, b in pairs]
    return [(rf"^{tokens[0]}$", tokens[1]), *block]


_LGI_RENAMES = _renames(_LGI_BLOCK_PARTS, _LGI_TOKENS)
_LGI_INVERSE = _renames(tuple((b, a) for a, b in _LGI_BLOCK_PARTS), _LGI_TOKENS[::-1])


def _rename(name: str, renames: list[tuple[str, str]]) -> str:
    """``name`` with the first matching rename applied (unchanged when none matches)."""
    for pattern, repl in renames:
        name, n = re.subn(pattern, repl, name)
        if n:
            break
    return name
_FUSED = re.compile(r"^blocks\.(\d+)\.(intra|inter)\.attn\.(q|kv)\.weight$")


class ConversionError(ValueError):
    """An official state dict that does not map onto a maedfer model."""


@dataclass
class OfficialSpec:
    """What an official state dict holds: kind, encoder type, sizes and LGI-Former variant."""
    kind: str  # "finetune" | "pretrain"
    encoder: str  # "lgi" | "vit"
    embed_dim: int
    depth: int
    num_classes: int = 0
    num_regions: int = 0
    use_inter: bool = True
    use_lgi: bool = True
    decoder_dim: int = 0
    decoder_depth: int = 0
    decoder_out: int = 0


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    args = obj.get("args") if isinstance(obj, Mapping) else None
    for key in ("model", "module", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError("not a state dict: expected a mapping of tensors, or one under 'model'")
    return {k.removeprefix("module."): v for k, v in obj.items()}, args


def _block_count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    ids = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))}
    return max(ids) + 1 if ids else 0


def inspect_official(sd: Mapping[str, torch.Tensor]) -> OfficialSpec:
    """Work out which model an official state dict belongs to."""
    kind = "pretrain" if "encoder.patch_embed.proj.weight" in sd else "finetune"
    enc = "encoder." if kind == "pretrain" else ""
    if f"{enc}patch_embed.proj.weight" not in sd:
        raise ConversionError("no 'patch_embed.proj.weight' key: not an MAE-DFER / VideoMAE checkpoint")
    lgi = f"{enc}lg_region_tokens" in sd
    spec = OfficialSpec(
        kind=kind,
        encoder="lgi" if lgi else "vit",
        embed_dim=sd[f"{enc}patch_embed.proj.weight"].shape[0],
        depth=_block_count(sd, enc),
    )
    if lgi:
        spec.num_regions = sd[f"{enc}lg_region_tokens"].shape[0]
        spec.use_inter = f"{enc}blocks.0.second_attn.q.weight" in sd
        spec.use_lgi = f"{enc}blocks.0.third_attn.q.weight" in sd
    if kind == "finetune":
        if "head.weight" not in sd:
            raise ConversionError("fine-tuned checkpoint without 'head.weight'")
        spec.num_classes = sd["head.weight"].shape[0]
    else:
        spec.decoder_dim = sd["encoder_to_decoder.weight"].shape[0]
        spec.decoder_depth = _block_count(sd, "decoder.")
        if "decoder.head.weight" in sd:
            spec.decoder_out = sd["decoder.head.weight"].shape[0]
    return spec


def official_to_maedfer(sd: Mapping[str, torch.Tensor], spec: OfficialSpec) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/kv of self-attention) official keys into maedfer's layout."""
    enc_prefix = "encoder." if spec.kind == "pretrain" else ""
    out: dict[str, torch.Tensor] = {}
    fused: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if (
            key.startswith(enc_prefix)
            and not key.startswith(("encoder_to_decoder", "decoder."))
            and (spec.kind == "pretrain" or key not in ("fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"))
        ):
            name = key[len(enc_prefix) :]
            if spec.encoder == "lgi":
                name = _rename(name, _LGI_RENAMES)
                if m := _FUSED.match(name):
                    fused.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = value
                    continue
            out[f"encoder.{name}"] = value
        else:
            out[key] = value
    for (block, step), parts in fused.items():
        if set(parts) != {"q", "kv"}:
            raise ConversionError(f"block {block} {step} attention has {sorted(parts)} weights, expected q and kv")
        out[f"encoder.blocks.{block}.{step}.attn.qkv.weight"] = torch.cat([parts["q"], parts["kv"]], dim=0)
    return out


def maedfer_to_official(sd: Mapping[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Inverse of :func:`official_to_maedfer` (for exporting to the authors' code)."""
    enc_prefix = "encoder." if kind == "pretrain" else ""
    lgi = "encoder.region_tokens" in sd
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not key.startswith("encoder."):
            out[key] = value
            continue
        name = key[len("encoder.") :]
        if lgi:
            name = _rename(name, _LGI_INVERSE)
            if name.endswith(("first_attn.qkv.weight", "second_attn.qkv.weight")):
                dim = value.shape[1]
                base = name[: -len("qkv.weight")]
                out[f"{enc_prefix}{base}q.weight"] = value[:dim]
                out[f"{enc_prefix}{base}kv.weight"] = value[dim:]
                continue
        out[f"{enc_prefix}{name}"] = value
    return out


def target_from_args(args: Any) -> dict[str, Any]:
    """The pre-training target recorded in the authors' saved arguments ({} when they say nothing).

    ``use_frame_diff_as_target`` false: the original VideoMAE target; true: MAE-DFER's joint
    target with lambda = 1 - ``target_diff_weight`` (the plain MSE, lambda 0.5, when it is unset).
    Arguments of the original VideoMAE code (``normlize_target`` without the MAE-DFER option) mean
    the VideoMAE target, its only one.
    """
    if args is not None and not hasattr(args, "use_frame_diff_as_target") and hasattr(args, "normlize_target"):
        return {"target": "videomae"}
    if args is None or not hasattr(args, "use_frame_diff_as_target"):
        return {}
    if not args.use_frame_diff_as_target:
        return {"target": "videomae"}
    diff_weight = getattr(args, "target_diff_weight", None)
    return {"target": "mae_dfer", "appearance_weight": 0.5 if diff_weight is None else 1.0 - float(diff_weight)}


def _target_kwargs(target: str | None, args: Any) -> dict[str, Any]:
    """The pre-training model's target arguments: ``target`` if given, else the saved ``args``, else the default."""
    if target is not None and target not in TARGETS:
        raise ConversionError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    recorded = target_from_args(args)
    if target is None or recorded.get("target") == target:
        return recorded
    if recorded:
        log.warning("the checkpoint's saved args say target %r; using %r as asked", recorded["target"], target)
    return {"target": target}


def _decoder_heads(spec: OfficialSpec, decoder_heads: int | None) -> int:
    """Attention heads of the official decoder: given, or from the width's known size."""
    heads = decoder_heads or HEADS_BY_DIM.get(spec.decoder_dim)
    if heads is None:
        raise ConversionError(
            f"cannot infer the decoder's head count for decoder width {spec.decoder_dim} "
            f"(known widths: {', '.join(map(str, sorted(HEADS_BY_DIM)))}); pass decoder_heads (CLI: --decoder-heads N)"
        )
    if spec.decoder_dim % heads:
        raise ConversionError(f"decoder width {spec.decoder_dim} is not divisible by {heads} decoder heads")
    return heads


def _arch_for(
    spec: OfficialSpec,
    region_size: tuple[int, int, int] | None,
    num_heads: int | None,
    pool: str,
    token_order: str,
    args: Any,
    decoder_heads: int | None = None,
    target: str | None = None,
) -> tuple[str, dict[str, Any]]:
    heads = num_heads or HEADS_BY_DIM.get(spec.embed_dim)
    if heads is None:
        raise ConversionError(f"cannot infer the head count for embedding dim {spec.embed_dim}; pass num_heads")
    kwargs: dict[str, Any] = dict(embed_dim=spec.embed_dim, depth=spec.depth, num_heads=heads)
    if spec.encoder == "lgi":
        if region_size is None and args is not None and getattr(args, "lg_region_size", None):
            region_size = tuple(args.lg_region_size)
        region_size = region_size or REGION_BY_COUNT.get(spec.num_regions)
        if region_size is None:
            raise ConversionError(
                f"{spec.num_regions} regions fit several region sizes (e.g. 2x10x10 and 4x5x10); pass region_size"
            )
        kwargs.update(region_size=tuple(region_size), use_inter=spec.use_inter, use_lgi=spec.use_lgi)
        size = LGI_SIZE_BY_DIM.get(spec.embed_dim, "base")
        name = f"lgi_former_{size}_patch16_160"
    else:
        name = "vit_base_patch16_160"
    if spec.kind == "pretrain":
        kwargs.update(
            decoder_dim=spec.decoder_dim,
            decoder_depth=spec.decoder_depth,
            decoder_heads=_decoder_heads(spec, decoder_heads),
            token_order=token_order,
            **_target_kwargs(target, args),
        )
        return f"pretrain_{name}", kwargs
    if spec.encoder == "lgi":
        if args is not None and getattr(args, "lg_classify_token_type", None) in ("region", "org"):
            pool = "region" if args.lg_classify_token_type == "region" else "local"
        kwargs["pool"] = pool
    kwargs["num_classes"] = spec.num_classes
    return name, kwargs


def _read(path: str | Path, trust_pickle: bool) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        if trust_pickle:
            raise
        raise ConversionError(
            f"{path}: could not be read with torch.load(weights_only=True) ({type(exc).__name__}); "
            "if you trust the file, retry with trust_pickle=True (CLI: --trust-pickle)"
        ) from exc


def load_official_checkpoint(
    checkpoint: str | Path | Mapping[str, Any],
    *,
    region_size: tuple[int, int, int] | None = None,
    num_heads: int | None = None,
    pool: str = "region",
    token_order: str = "authors",
    class_names: list[str] | None = None,
    trust_pickle: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    decoder_heads: int | None = None,
    target: str | None = None,
) -> nn.Module:
    """Build the matching maedfer model and load an official checkpoint into it (strict).

    The clip geometry is not stored in a state dict: it defaults to the paper's 16 x 160 x 160
    (override with ``model_kwargs=dict(img_size=..., num_frames=...)``); cube size comes from
    the patch-embedding kernel. Pre-training checkpoints: ``decoder_heads`` is needed for a
    decoder width outside :data:`HEADS_BY_DIM` (``model_kwargs["decoder_heads"]`` counts too);
    ``target`` ("mae_dfer" or "videomae") overrides the target read from the saved ``args``.
    """
    obj = _read(checkpoint, trust_pickle) if isinstance(checkpoint, (str, Path)) else checkpoint
    sd, args = _unwrap(obj)
    spec = inspect_official(sd)
    decoder_heads = decoder_heads or (model_kwargs or {}).get("decoder_heads")
    name, kwargs = _arch_for(spec, region_size, num_heads, pool, token_order, args, decoder_heads, target)
    kernel = sd["encoder.patch_embed.proj.weight" if spec.kind == "pretrain" else "patch_embed.proj.weight"].shape
    kwargs.update(tubelet_size=kernel[2], patch_size=kernel[3], **(model_kwargs or {}))
    cube_values = kwargs["tubelet_size"] * kwargs["patch_size"] ** 2 * 3
    if spec.kind == "pretrain" and spec.decoder_out not in (0, cube_values):
        raise ConversionError(
            f"the decoder head predicts {spec.decoder_out} values per cube; both targets (mae_dfer, videomae) "
            f"need tubelet x patch x patch x 3 = {cube_values}"
        )
    model = create_model(name, init=False, **kwargs)
    converted = official_to_maedfer(sd, spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"official checkpoint does not match {name}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise ConversionError(
                f"{key}: official shape {tuple(value.shape)} != expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict(converted, strict=True)
    model.class_names = class_names
    log.info("loaded official %s checkpoint into %s (%d tensors)", spec.kind, name, len(converted))
    return model
