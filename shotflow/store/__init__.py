"""Files that must survive a crash or a power cut: the one atomic-write helper of the project.

`shotflow.store.atomic` owns how a file reaches the disk durably (temp file in the same folder,
fsync, rename, fsync the folder) and turns a full disk into one clear `StoreFullError`.
"""

from shotflow.store.atomic import (
    StoreFullError,
    fsync_dir,
    move_atomic,
    write_bytes_atomic,
    write_text_atomic,
)

__all__ = ["StoreFullError", "fsync_dir", "move_atomic", "write_bytes_atomic", "write_text_atomic"]
