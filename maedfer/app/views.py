"""What the app shows of a prediction: the probability curve, the summary and the window table (no gradio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from maedfer.predict.result import PredictionResult


def probability_figure(result: PredictionResult, track: int = 0) -> Figure:
    """Each class's probability in each window of one face track, at the window's centre time (seconds).

    The overall (time-weighted) label is the title; the legend gives each class's overall probability.
    """
    t = result.tracks[track]
    centres = np.array([(w.start_s + w.end_s) / 2 for w in t.windows])  # (W,)
    probs = np.stack([w.probs for w in t.windows])  # (W, C)
    fig = Figure(figsize=(8.0, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for c, name in enumerate(result.class_names):
        ax.plot(centres, probs[:, c], marker="o", markersize=3, linewidth=1.8 if name == t.label else 1.0,
                label=f"{name} ({t.probs[c]:.2f})")
    ax.set_xlim(0.0, max(result.duration_s, float(centres.max()) + 1e-3))
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("time (s): centre of each window")
    ax.set_ylabel("probability")
    ax.set_title(f"face #{t.track_id}: {t.label} overall ({float(t.probs.max()):.2f}), {len(t.windows)} windows",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return fig


def window_table(result: PredictionResult) -> str:
    """A Markdown table of the first face's windows: times, label, each class's probability."""
    t, names = result.tracks[0], result.class_names
    lines = ["| start (s) | end (s) | label | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    for w in t.windows:
        probs = " | ".join(f"{p:.3f}" for p in w.probs)
        lines.append(f"| {w.start_s:.2f} | {w.end_s:.2f} | {w.label} | {probs} |")
    lines.append(f"| overall | | **{t.label}** | " + " | ".join(f"{p:.3f}" for p in t.probs) + " |")
    return "\n".join(lines)


def summary_markdown(result: PredictionResult) -> str:
    """The headline (overall class), the video and model, the notes and the timing."""
    t, tm = result.tracks[0], result.timing
    lines = [
        f"### Overall: {t.label} ({100 * float(t.probs.max()):.1f} %)",
        f"{Path(result.video).name}: {result.width}x{result.height}, {result.fps:.2f} fps, {result.frames} frames "
        f"({result.duration_s:.2f} s); {len(result.tracks)} face track(s), {len(t.windows)} windows of "
        f"{result.settings['clip_len']} frames taken every {result.settings['frame_stride']}.",
        f"Model `{result.model}` ({result.checkpoint}); {tm.frames_per_s:.1f} frames/s (decode {tm.decode_s:.1f} s, "
        f"face detection {tm.detect_s:.1f} s, model {tm.model_s:.1f} s, annotation {tm.annotate_s:.1f} s).",
    ]
    lines += [f"- note: {n}" for n in [*result.notes, *t.notes]]
    return "\n\n".join(lines)
