"""embedpipe: Spark jobs that turn corpora and interaction logs into embedding tables."""

__version__ = "0.1.0"
