"""Training: cell data sets, training loops, the training pipeline, the acquisition noise model."""
