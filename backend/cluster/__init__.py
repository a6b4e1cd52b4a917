"""Spherical k-means and nearest-centroid similarities."""

from .kmeans import SphericalKMeans, default_k, l2_normalize, nearest_centroid

__all__ = ["SphericalKMeans", "default_k", "l2_normalize", "nearest_centroid"]
