"""PreResQ-R1: preference-response disentangled GRPO for visual quality assessment."""

__version__ = "0.1.0"
