"""Simulation stage of the lab: backend, problems, noise, methods, runner, experiments."""

__version__ = "0.1.0"
