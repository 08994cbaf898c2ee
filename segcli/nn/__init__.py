"""Pieces used by two or more recipes: backbones, ASPP, FPN glue, initialisers."""
