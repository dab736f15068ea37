"""The built-in catalogue of where each dataset comes from (``source: {catalogue: <name>}`` in a params file).

Public entries (RAVDESS, CREMA-D, eNTERFACE05) list every file with its URL and, where the owners
publish one, its checksum (md5 where they publish md5, sha256 otherwise). None of the owners publishes a
checksum that this project could confirm, so every entry says ``record on first download``: the first
download's md5 and sha256 are recorded in the dataset folder's ``.acquire.json`` and every later download
is verified against them (and the run says so). A params file may pin checksums (``checksums:``).

Gated entries need the owners' permission: VoxCeleb2 downloads its split parts with the credentials the
owners send (environment variables, never written anywhere) or joins parts the user put in the inbox
folder; DFEW, FERV39k and MAFW take the archives the owners send from the inbox folder. Their errors say
where to request access and which files to put where.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECORD = "record on first download"


@dataclass(frozen=True)
class CatalogueFile:
    """One file of an entry: its name, URL (or the URLs of its byte-split parts) and checksum."""

    name: str  # the (joined) file name, e.g. Video_Speech_Actor_01.zip or vox2_dev_mp4.zip
    urls: tuple[str, ...]  # one URL, or the parts in order (joined into `name`)
    checksum: str | None = None  # "md5:HEX" / "sha256:HEX"; None: RECORD
    into: str = ""  # folder under the dataset root for a file that is not an archive (CREMA-D's VideoFlash)


@dataclass(frozen=True)
class CatalogueEntry:
    """Where a dataset comes from, its size and licence, and what the user must do."""

    name: str
    title: str
    page: str  # the owners' page
    licence: str
    size: str  # as the owners state it (or "not stated")
    access: str  # "public" | "credentials" | "request"
    files: tuple[CatalogueFile, ...] = ()
    missing_ok: bool = False  # file names generated from the naming scheme: a 404 is listed, not an error
    credentials: tuple[str, str] | None = None  # env var names of user and password (VoxCeleb2)
    expect: str = ""  # what the extracted folder holds (the adapter's layout)
    request: str = ""  # gated: how to get access and what to put in the inbox
    notes: tuple[str, ...] = field(default_factory=tuple)

    def base_url(self) -> str:
        """The folder URL of the first file (what ``mirror`` replaces)."""
        return self.files[0].urls[0].rsplit("/", 1)[0] + "/" if self.files else ""


ZENODO_RAVDESS = "https://zenodo.org/records/1188976/files/"
CREMAD_LFS = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/VideoFlash/"
VOX_BASE = "https://thor.robots.ox.ac.uk/~vgg/data/voxceleb/vox1a/"
CREMAD_SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")
CREMAD_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def _ravdess(kind: str, actors: list[int]) -> tuple[CatalogueFile, ...]:
    return tuple(CatalogueFile(name=(n := f"Video_{kind}_Actor_{a:02d}.zip"), urls=(f"{ZENODO_RAVDESS}{n}",))
                 for a in actors)


def _cremad_names() -> list[str]:
    """Every name the owners' naming scheme allows (7,462; the repository holds 7,442 of them)."""
    names = []
    for actor in range(1001, 1092):
        for sentence in CREMAD_SENTENCES:
            for emo in CREMAD_EMOTIONS:
                levels = ("XX",) if sentence != "IEO" else (("XX",) if emo == "NEU" else ("LO", "MD", "HI"))
                names += [f"{actor}_{sentence}_{emo}_{level}.flv" for level in levels]
    return names


CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in (
    CatalogueEntry(
        name="ravdess", title="RAVDESS (video speech)", page="https://zenodo.org/records/1188976",
        licence="CC BY-NC-SA 4.0 (non-commercial; cite Livingstone & Russo 2018)",
        size="24 zips, about 0.5 GB each (~13 GB)", access="public",
        files=_ravdess("Speech", list(range(1, 25))), expect="Actor_<NN>/02-01-*.mp4",
        notes=("Zenodo shows an md5 per file on the record page; pin them with `checksums:` once copied from there",)),
    CatalogueEntry(
        name="ravdess_song", title="RAVDESS (video song)", page="https://zenodo.org/records/1188976",
        licence="CC BY-NC-SA 4.0", size="23 zips (no song for actor 18)", access="public",
        files=_ravdess("Song", [a for a in range(1, 25) if a != 18]), expect="Actor_<NN>/0*-02-*.mp4"),
    CatalogueEntry(
        name="cremad", title="CREMA-D (VideoFlash)", page="https://github.com/CheyneyComputerScience/CREMA-D",
        licence="Open Database License (ODbL) / Database Contents License", size="7,442 .flv files (git LFS)",
        access="public", missing_ok=True,
        files=tuple(CatalogueFile(name=n, urls=(f"{CREMAD_LFS}{n}",), into="VideoFlash") for n in _cremad_names()),
        expect="VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv",
        notes=("names come from the owners' naming scheme; the 20 it allows that the repository lacks are "
               "listed as absent upstream",)),
    CatalogueEntry(
        name="enterface", title="eNTERFACE'05 audio-visual emotion database",
        page="https://enterface.net/enterface05/emotion.html", licence="free for research use (see the page)",
        size="not stated by the owners", access="public",
        files=(CatalogueFile(name="project2_database.zip",
                             urls=("http://www.enterface.net/enterface05/docs/results/databases/project2_database.zip",)),),
        expect="subject <N>/<emotion>/sentence <k>/*.avi",
        notes=("the https site sends an incomplete certificate chain; if the download fails, get the zip in a "
               "browser from the page and give it as `files: [path/to/project2_database.zip]`",)),
    CatalogueEntry(
        name="voxceleb2", title="VoxCeleb2 dev set (mp4)", page="https://www.robots.ox.ac.uk/~vgg/data/voxceleb/",
        licence="CC BY-SA 4.0 (metadata); videos from YouTube, research use", size="9 parts, ~249 GB joined",
        access="credentials", credentials=("MAEDFER_VOXCELEB2_USER", "MAEDFER_VOXCELEB2_PASSWORD"),
        files=(CatalogueFile(name="vox2_dev_mp4.zip",
                             urls=tuple(f"{VOX_BASE}vox2_dev_mp4_parta{c}" for c in "abcdefghi")),),
        expect="dev/mp4/<speaker>/<video>/<clip>.mp4",
        request="request access through the owners' form at https://www.robots.ox.ac.uk/~vgg/data/voxceleb/"),
    CatalogueEntry(
        name="dfew", title="DFEW", page="https://dfew-dataset.github.io", licence="research use, by agreement",
        size="not stated publicly", access="request", expect="Clip/clip_224x224/<id>/ and EmoLabel_DataSplit/",
        request="request access at https://dfew-dataset.github.io (the owners send download links)"),
    CatalogueEntry(
        name="ferv39k", title="FERV39k", page="https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html",
        licence="research use, by agreement", size="not stated publicly", access="request",
        expect="2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/ and 4_setups/All_scenes/",
        request="request access at https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html"),
    CatalogueEntry(
        name="mafw", title="MAFW", page="https://mafw-database.github.io/MAFW", licence="research use, by agreement",
        size="not stated publicly", access="request", expect="data/frames/<NNNNN>/ (or data/clips/) and split/",
        request="request access at https://mafw-database.github.io/MAFW (signed licence agreement)"),
)}


def catalogue_entry(name: str, where: str) -> CatalogueEntry:
    """The entry ``name``; a one-line :class:`ValueError` naming ``where`` and the known entries otherwise."""
    if name not in CATALOGUE:
        raise ValueError(f"{where}: no catalogue entry {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]
