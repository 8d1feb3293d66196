"""Text corpus -> tokens, vocabulary, bag-of-words and one-hot vectors (the ``tokenize`` job).

Modules: :mod:`~embedpipe.text.tokenizer` (Unicode-aware tokenization as Spark SQL expressions),
:mod:`~embedpipe.text.documents` (documents from an input, drop reasons, counts),
:mod:`~embedpipe.text.vocabulary` (frequencies and deterministic ids, also used for items),
:mod:`~embedpipe.text.vectors` (SparseVector columns), :mod:`~embedpipe.text.pipeline` (the job).
"""
