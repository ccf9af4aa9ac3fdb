"""Assembles REPORT.md and report.html from a run directory."""
