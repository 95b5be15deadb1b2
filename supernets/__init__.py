"""Weight-sharing supernets over the project's cell spaces, trained live on CPU or GPU.

Each space has a stand-alone network builder (any architecture trained from scratch) and a
supernet that holds every operation of every edge, from which a sub-network inherits its
weights (single-path training as in Guo et al., "Single Path One-Shot Neural Architecture
Search with Uniform Sampling", ECCV 2020; all-operations training as in Liu et al.,
"DARTS: Differentiable Architecture Search", ICLR 2019).
"""
