"""Rendering: tables, plots, overlays, the HTML report, benchmark tables.

Imports nothing itself: `segcli eval --gt-json` renders without torch."""
