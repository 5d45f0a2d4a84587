"""Pure loss functions: tensors and scalar hyperparameters in, (mean loss, detached metrics) out."""
