"""Recommendation models as plain `nn.Module`s; they know nothing of tuning or Ray."""

from models.sasrec import SASRec, SASRecConfig

__all__ = ["SASRec", "SASRecConfig"]
