"""Collectors: train every architecture of a space with a fixed recipe and write a table.

* :mod:`.datasets` -- digits (scikit-learn) and CIFAR-10 (user folder) with fixed splits;
* :mod:`.train` -- the recorded training recipe and the deterministic training function;
* :mod:`.convnet` -- the resumable, crash-safe, parallel collection loop for ConvNet spaces.
"""
