"""The out-of-fold store: one ``RunStore`` owns the layout of ``oof/``; records, checkpoints and file formats."""

from mmscel.store.checkpoint import FoldCheckpoint, RunCheckpoints
from mmscel.store.io import (
    array_digest,
    data_fingerprint,
    digest,
    library_versions,
    load_array,
    read_manifest,
    save_array,
    write_manifest,
    write_parquet,
)
from mmscel.store.layout import check_name
from mmscel.store.records import BlendRecord, BlendTask, RunRecord
from mmscel.store.run_store import LAST_DAY, RunStore

__all__ = [
    "LAST_DAY",
    "BlendRecord",
    "BlendTask",
    "FoldCheckpoint",
    "RunCheckpoints",
    "RunRecord",
    "RunStore",
    "array_digest",
    "check_name",
    "data_fingerprint",
    "digest",
    "library_versions",
    "load_array",
    "read_manifest",
    "save_array",
    "write_manifest",
    "write_parquet",
]
