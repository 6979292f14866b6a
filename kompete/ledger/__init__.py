"""The ledger: a local SQLite history of runs, submissions and leaderboard snapshots.

store   the database (schema, migrations, upserts)
record  what `kompete score` and `kompete submit` write into it
sync    pull submissions and the leaderboard through the kaggle client
report  tables: where you stand, runs and their config changes, local vs public correlation
plot    one PNG of the history
"""

from kompete.ledger.store import DB_ENV, Ledger, LedgerError, default_db_path

__all__ = ["DB_ENV", "Ledger", "LedgerError", "default_db_path"]
