"""Kaggle's leaderboard metric, locally: Inception features, FID, memorization distance, MiFID."""

from kompete.metrics.fid import (RankDeficientWarning, frechet_distance, frechet_distance_to, statistics,
                                 trace_sqrt_product)
from kompete.metrics.mifid import FID_EPSILON, MifidResult, memorization_distance, mifid, mifid_from_parts, threshold

__all__ = ["FID_EPSILON", "MifidResult", "RankDeficientWarning", "frechet_distance", "frechet_distance_to", "memorization_distance",
           "mifid", "mifid_from_parts", "statistics", "threshold", "trace_sqrt_product"]
