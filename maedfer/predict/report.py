"""Text renderings of predictions: a readable table, and the JSON document of ``maedfer predict --json``.

The JSON document of the command (schema ``maedfer.predict.batch/1``)::

    {"schema": "maedfer.predict.batch/1",
     "results": [PredictionResult.to_dict(), ...],    # schema maedfer.predict/1, see result.py
     "errors": [{"video": str, "error": str}, ...]}   # videos that could not be predicted
"""

from __future__ import annotations

import json
from typing import Any

from maedfer.predict.result import PredictionResult, TrackPrediction

BATCH_SCHEMA = "maedfer.predict.batch/1"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i != 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def track_table(track: TrackPrediction, class_names: list[str]) -> list[str]:
    """One row per window (start/end seconds, top label, probabilities), then the overall row."""
    header = ["start_s", "end_s", "label", *class_names]
    rows = [[f"{w.start_s:.2f}", f"{w.end_s:.2f}", w.label, *(f"{p:.3f}" for p in w.probs)] for w in track.windows]
    overall = ["overall", "", track.label, *(f"{p:.3f}" for p in track.probs)]
    widths = [max(len(r[i]) for r in [header, *rows, overall]) for i in range(len(header))]
    widths[0] = max(widths[0], 7)
    lines = [_row(header, widths), *(_row(r, widths) for r in rows), "-" * len(_row(header, widths))]
    lines.append(_row(overall, widths))
    return lines


def format_table(result: PredictionResult) -> str:
    """The readable report of one video."""
    r = result
    lines = [
        f"{r.video}: {r.width}x{r.height}, {r.fps:.3f} fps, {r.frames} frames, {r.duration_s:.2f} s",
        f"model {r.model} ({r.checkpoint}); windows of {r.settings['clip_len']} frames every "
        f"{r.settings['frame_stride']} ({r.settings['window_frames']} frames), hop {r.settings['hop']} frames",
    ]
    for t in r.tracks:
        box = t.box_summary()
        x1, y1, x2, y2 = box["mean"]
        lines += [
            "",
            f"face #{t.track_id}: frames {t.first_frame}-{t.last_frame}, mean crop box ({x1:.0f}, {y1:.0f})-"
            f"({x2:.0f}, {y2:.0f}), detected on {t.detected_frames}/{t.detection_frames} detection frames",
            *track_table(t, r.class_names),
            f"overall (time-weighted): {t.label} ({float(t.probs.max()):.3f})",
        ]
        lines += [f"note: {n}" for n in t.notes]
    lines += [f"note: {n}" for n in r.notes]
    tm = r.timing
    lines.append(
        f"{tm.frames_per_s:.1f} frames/s (decode {tm.decode_s:.2f} s, detect {tm.detect_s:.2f} s, "
        f"model {tm.model_s:.2f} s)" + (f"; annotated copy {r.annotated}" if r.annotated else "")
    )
    return "\n".join(lines)


def batch_document(results: list[PredictionResult], errors: list[tuple[str, str]]) -> dict[str, Any]:
    """The JSON document of a batch: results and per-video errors."""
    return {
        "schema": BATCH_SCHEMA,
        "results": [r.to_dict() for r in results],
        "errors": [{"video": v, "error": e} for v, e in errors],
    }


def format_json(results: list[PredictionResult], errors: list[tuple[str, str]]) -> str:
    """:func:`batch_document` as indented JSON text."""
    return json.dumps(batch_document(results, errors), indent=2)
