"""How to obtain each dataset (DATASETS.md), for the one-line message of a missing dataset folder."""

from __future__ import annotations

HOW_TO_OBTAIN: dict[str, str] = {
    "voxceleb2": "VoxCeleb2 (dev set): request access through the owners' form (VGG, Oxford), then unpack "
                 "dev/mp4/<speaker>/<video>/<clip>.mp4 into it.",
    "dfew": "DFEW: request access from the owners (dfew-dataset.github.io), then unpack Clip/clip_224x224/ and "
            "EmoLabel_DataSplit/ into it.",
    "ferv39k": "FERV39k: request access from the owners (wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html), then "
               "unpack 2_ClipsforFaceCrop/ and 4_setups/ into it.",
    "mafw": "MAFW: request access from the owners (mafw-database.github.io/MAFW), then unpack data/frames/ (or "
            "data/clips/) and split/ into it.",
    "cremad": "CREMA-D: download VideoFlash/*.flv from the owners' repository (github.com/CheyneyComputerScience/"
              "CREMA-D, git LFS) into it.",
    "ravdess": "RAVDESS: download Video_Speech_Actor_01..24.zip from Zenodo record 1188976 (CC BY-NC-SA 4.0) and "
               "unzip them into it (Actor_NN/ folders).",
    "enterface": "eNTERFACE05: download the audio-visual emotion database from enterface.net and unpack its "
                 "'subject N' folders into it.",
}


def how_to_obtain(dataset: str) -> str:
    """One sentence on where to obtain ``dataset`` and what to unpack (DATASETS.md for an unknown name)."""
    return HOW_TO_OBTAIN.get(dataset, "see DATASETS.md for its layout and where to obtain it.")
