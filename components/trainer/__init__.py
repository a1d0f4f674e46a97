"""Trainer module code: input pipeline, augmentation, model, export and ``run_fn``."""
