"""Figures: reconstructions of the pre-training model (paper Fig. 4)."""
