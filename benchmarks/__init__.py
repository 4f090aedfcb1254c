"""Side-by-side benchmark suite: skmtl against torch-rechub, DeepCTR-Torch, gradient
boosting and a hand-written PyTorch loop, on Census-Income and Coat.

Run it from the repository root with ``python -m benchmarks.run``; see
``benchmarks/README.md``.
"""
