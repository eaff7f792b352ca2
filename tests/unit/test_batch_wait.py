"""The batch test's progress probe waits for the condition, not for the file (a race seen on a
fresh machine: `no such table: jobs` while the kit was still creating its tables)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.test_batch_cli import _rows_done


def test_a_database_without_its_tables_yet_counts_as_no_progress(tmp_path: Path) -> None:
    database = tmp_path / "out.db"
    assert _rows_done(database) == 0  # not there yet
    sqlite3.connect(database).close()  # the file exists, the tables do not
    assert database.exists() and _rows_done(database) == 0
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE jobs (rows_done INTEGER)")
    connection.commit()
    assert _rows_done(database) == 0  # tables, no job row yet
    connection.execute("INSERT INTO jobs VALUES (4000)")
    connection.commit()
    connection.close()
    assert _rows_done(database) == 4000
