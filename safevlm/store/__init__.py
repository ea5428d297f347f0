"""The SQLite log of chat turns: sessions, images by content hash, turns, feedback, annotations.

`Store` is the one entry point; the app, the CLI and the eval call it with plain values.
It knows no model and no UI.
"""

# Where things live, from the bottom up:
#   errors      StoreError
#   files       folders, atomic file writes
#   values      allowed values, JSON columns, timestamps
#   schema      tables, views, migrations, schema version
#   connection  Connection: opening the file, the lock, transactions, sqlite3 errors
#   images      image files and rows, by sha256
#   retention   deleting turns and the images they leave unused
#   export      JSONL training records and CSV files from turn rows
#   reading     LogReader(Connection): listing turns, image paths, exports
#   core        Store(LogReader): sessions, turns, feedback, labels, purges

from safevlm.store.core import Store
from safevlm.store.errors import StoreError
from safevlm.store.export import TRAINING_KEYS
from safevlm.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TRAINING_KEYS", "Store", "StoreError"]
