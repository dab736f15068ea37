"""Reconstruction previews (Fig. 4 style)."""

from __future__ import annotations

import numpy as np
import torch

from maedfer.models import create_model
from maedfer.models.targets import unnormalise
from maedfer.viz.reconstruction import reconstruction_rows, save_reconstruction_figure
from tests.helpers import TINY


def test_rows_shapes_and_visible_patches_are_original(tmp_path):
    model = create_model("pretrain_lgi_former_test", region_size=(2, 2, 4), mask_ratio=0.75, **TINY)
    video = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    mask = model.sample_mask(1, generator=torch.Generator().manual_seed(0))
    rows = reconstruction_rows(model, video, mask)
    assert rows.shape == (5, 4, 64, 64, 3) and rows.dtype == np.uint8
    original = (unnormalise(video)[0, :, ::2].permute(1, 2, 3, 0).clamp(0, 1) * 255).round().numpy()
    np.testing.assert_allclose(rows[0], original, atol=1)
    visible = ~mask[0].reshape(4, 4, 4)  # (T', h, w)
    t, hh, ww = [int(v[0]) for v in torch.nonzero(visible, as_tuple=True)]
    patch = (slice(hh * 16, hh * 16 + 16), slice(ww * 16, ww * 16 + 16))
    np.testing.assert_array_equal(rows[2][t][patch], rows[0][t][patch])  # visible cube: original pixels
    path = save_reconstruction_figure(model, video, mask, tmp_path / "rec.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
