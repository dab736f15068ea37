"""Constants shared across the library (never repeat these as literals elsewhere)."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Clip geometry used throughout the paper.
NUM_FRAMES: int = 16
IMG_SIZE: int = 160
PATCH_SIZE: int = 16
TUBELET_SIZE: int = 2
DEFAULT_STRIDE: int = 4  # frames between the sampled frames of a clip (FERV39k: 1, its dataset setting)
