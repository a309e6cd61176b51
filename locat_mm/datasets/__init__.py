"""Synthetic datasets the project builds itself (no download)."""
