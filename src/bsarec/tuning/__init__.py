"""Hyperparameter search with Optuna (`bsarec tune`)."""
