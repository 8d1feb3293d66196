"""``embedpipe train``: embedding tables from tokenize/histories outputs (see :mod:`embedpipe.methods.pipeline`)."""
