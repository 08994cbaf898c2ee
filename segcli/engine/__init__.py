"""Training, evaluation, inference and benchmarking: one loop for every recipe."""
