"""Optimizer presets and search spaces, shipped as package data."""
