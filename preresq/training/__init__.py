"""GRPO training through TRL: ``train(cfg)`` runs every stage of a config."""

from preresq.training.train import train

__all__ = ["train"]
