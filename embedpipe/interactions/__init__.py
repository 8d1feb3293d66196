"""Interaction logs -> per-user item sequences, item vocabulary, user x item vectors (``histories``).

Modules: :mod:`~embedpipe.interactions.log` (column resolution and row cleaning),
:mod:`~embedpipe.interactions.histories` (sequences and per-pair counts),
:mod:`~embedpipe.interactions.pipeline` (the job). The item vocabulary and the sparse vectors reuse
:mod:`embedpipe.text.vocabulary` and :mod:`embedpipe.text.vectors`, so items and tokens follow the
same id rule and the same vector layout.
"""
