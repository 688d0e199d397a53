"""digitgen trainer: MNIST data, training loops, presets, evaluation, figures and report."""
