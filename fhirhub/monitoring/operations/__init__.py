"""Observation/$lastn and Observation/$stats."""
