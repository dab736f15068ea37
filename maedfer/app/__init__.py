"""``maedfer app``: a local web page (Gradio) for trying a model on a face video.

    from maedfer.app import build_app, launch
    from maedfer.predict import Predictor
    page = build_app(Predictor("hub/maedfer-demo-dfew-fold1"), examples=["clip.mp4"])
    launch(page, host="127.0.0.1", port=7860)

The page (:mod:`maedfer.app.page`) reuses :mod:`maedfer.predict` for the work: faces, windows, annotated
video; :mod:`maedfer.app.views` draws the curve and the tables. gradio is imported (a few seconds) only when
the page is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app", "default_examples", "launch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from maedfer.app import page

        return getattr(page, name)
    raise AttributeError(f"module 'maedfer.app' has no attribute {name!r}")
