"""Column names and schemas shared by every job, defined once."""

from __future__ import annotations

import pyarrow as pa

# Embedding table (one format for every method).
KEY = "key"
ID = "id"
COUNT = "count"
VECTOR = "vector"
TABLE_COLUMNS = (KEY, ID, COUNT, VECTOR)
TABLE_ARROW_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(ID, pa.int64(), nullable=False),
        pa.field(COUNT, pa.int64(), nullable=False),
        pa.field(VECTOR, pa.list_(pa.float32()), nullable=False),
    ]
)
TABLE_SPARK_DDL = "key string, id bigint, count bigint, vector array<float>"

# Tokenize outputs.
DOC_ID = "doc_id"
TOKENS = "tokens"
TOKEN = "token"
DOC_FREQ = "doc_freq"
INDICES = "indices"
VALUES = "values"
FEATURES = "features"  # Spark ML SparseVector
#: The label of a tokenize ``bow/`` written with ``label_column`` (double, never NULL there).
LABEL = "label"
VOCAB_DDL = "token string, id bigint, count bigint, doc_freq bigint"

# Histories outputs.
USER = "user"
ITEMS = "items"
ITEM = "item"

# Subdirectories of a tokenize / histories output.
TOKENS_DIR = "tokens"
VOCAB_DIR = "vocab"
BOW_DIR = "bow"
ONEHOT_DIR = "onehot"
SEQUENCES_DIR = "sequences"
VECTORS_DIR = "vectors"
REPORT_FILE = "report.json"
