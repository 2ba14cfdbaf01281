"""The schema stays ready to be distributed by site (docs/scaling.md, "Citus"): every table
that grows with the traffic has site_id in its primary key, in every unique index and in every
foreign key, so that Citus can make site_id the distribution column and keep every key
enforced within a shard."""

from __future__ import annotations

import asyncpg

# Tables that do not grow with the traffic, and what they would be on Citus.
NOT_DISTRIBUTED = {
    "schema_migrations": "a local table of the coordinator: one row per migration",
    "filtered_traffic_windows": "a reference table: one row per ingest process and window, "
    "let go after a day, whatever the traffic",
    "credentials": "a reference table: one row per key or token an administrator made, a "
    "read token's sites in an array",
}

TABLES = """
SELECT c.oid, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
# Columns of each unique index (the primary key's included) and of each foreign key.
KEYS = """
SELECT i.indexrelid::regclass::text AS key,
       array(SELECT a.attname FROM pg_attribute AS a
             WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) AS columns
FROM pg_index AS i WHERE i.indrelid = $1 AND i.indisunique
UNION ALL
SELECT f.conname, array(SELECT a.attname FROM pg_attribute AS a
                        WHERE a.attrelid = f.conrelid AND a.attnum = ANY (f.conkey))
FROM pg_constraint AS f WHERE f.conrelid = $1 AND f.contype = 'f'
"""


async def test_every_key_of_a_table_that_grows_with_traffic_holds_the_site(
    db: asyncpg.Connection,
) -> None:
    missing = []
    for table in await db.fetch(TABLES):
        if table["relname"] in NOT_DISTRIBUTED:
            continue
        keys = await db.fetch(KEYS, table["oid"])
        missing += [key["key"] for key in keys if "site_id" not in key["columns"]]

    assert missing == []
