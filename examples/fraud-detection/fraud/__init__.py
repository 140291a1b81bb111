"""Shared code for the fraud-detection example: shipped with the scripts."""
