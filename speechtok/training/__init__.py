"""Training: the common loop, tasks, data and recipes."""
