"""Fine-tuning on a user's image: contrast calibration and the two-stage fine-tune."""
