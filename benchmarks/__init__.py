"""Benchmarks of mnist-xp against Keras, PyTorch and the matrix-product floor (pytest-benchmark)."""
