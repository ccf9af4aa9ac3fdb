"""Closed-form theory: bounds, exact expected dynamics, step-size rules (THEORY.md)."""
