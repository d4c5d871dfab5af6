"""Detection: models applied to an image, model fit, evaluation, batch runs."""
