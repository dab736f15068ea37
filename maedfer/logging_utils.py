"""One logging set-up per entry point; library modules only call ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import os


def setup_logging(verbose: int = 0) -> None:
    """Configure the root logger: DEBUG with ``verbose``, else ``$MAEDFER_LOGLEVEL`` (default INFO)."""
    level = logging.DEBUG if verbose > 0 else getattr(logging, os.environ.get("MAEDFER_LOGLEVEL", "INFO"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
