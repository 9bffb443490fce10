"""Small builders for the training tests: preference rows and Parquet files in the export format."""

import pyarrow as pa
import pyarrow.parquet as pq

ROW = {"prompt": "Once upon a time\n\n", "chosen": "a cat sat.", "rejected": "a dog ran."}
CHAT = {
    "prompt": [{"role": "user", "content": "Hi?"}],
    "chosen": [{"role": "assistant", "content": "Hello!"}],
    "rejected": [{"role": "assistant", "content": "Go away."}],
}


def write(path, rows, schema=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path
