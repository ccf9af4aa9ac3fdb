"""Figures drawn from the tidy results table (curves.csv / verdicts.csv)."""
