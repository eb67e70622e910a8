#!/usr/bin/env python3
"""Times the message listings' statements on a database of many messages, with and without the
listing indexes (migration 0013). Prints each statement's time and SQLite's plan for it.

    python3 scripts/bench-listings.py [messages]            # default 1,000,000

The statements are those `Store::messages` and `Store::count_sent_since` issue for each filter
(crates/store/src/messages/listings.rs); the rows are four sessions' messages, one tenant, all
delivered but the newest ten, which are still queued.
"""
import glob
import os
import sqlite3
import sys
import tempfile
import time
import uuid

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MIGRATIONS = sorted(glob.glob(os.path.join(ROOT, "crates/store/migrations/*.sql")))
START = 1_700_000_000_000

STATEMENTS = [
    ("every tenant's, first page", "SELECT * FROM messages ORDER BY created_at DESC, id DESC LIMIT 50", ()),
    ("a tenant's, first page", "SELECT * FROM messages WHERE owner_id = ? ORDER BY created_at DESC, id DESC LIMIT 50", ("owner",)),
    ("a session's, first page",
     "SELECT * FROM messages WHERE session_id = (SELECT id FROM sessions WHERE id = ? AND owner_id = ?) "
     "ORDER BY created_at DESC, id DESC LIMIT 50", ("s1", "owner")),
    ("every tenant's, a page deep in the history",
     "SELECT * FROM messages WHERE created_at <= ? AND (created_at < ? OR id < ?) ORDER BY created_at DESC, id DESC LIMIT 50",
     (START + 1000, START + 1000, "z")),
    ("a session's sends since the millionth-less-1,000th, cap 1,000",
     "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM messages WHERE session_id = ? AND sent_at >= ? LIMIT ?) recent",
     ("s1", START + 999_000, 1000)),
    ("a tenant's by status, none matching (not indexed)",
     "SELECT * FROM messages WHERE owner_id = ? AND status = ? ORDER BY created_at DESC, id DESC LIMIT 50", ("owner", "failed")),
]


def build(path, messages, with_listing_indexes):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    for migration in MIGRATIONS:
        if with_listing_indexes or "0013_" not in migration:
            db.executescript(open(migration).read())
    for session in ("s0", "s1", "s2", "s3"):
        db.execute(
            "INSERT INTO sessions (id, owner_id, name, engine, status, created_at, updated_at) VALUES (?, 'owner', ?, 'sandbox', 'open', 0, 0)",
            (session, session))
    rows = ((str(uuid.uuid4()), "owner", f"s{n % 4}", n, f"+62812{n % 1_000_000:07d}", "text", '{"text":"hello"}',
             "delivered" if n < messages - 10 else "queued", START, START + n, START + n, START + n + 5)
            for n in range(messages))
    db.executemany(
        "INSERT INTO messages (id, owner_id, session_id, seq, recipient, kind, content, status, not_before, "
        "created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    return db


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"{messages} messages, SQLite {sqlite3.sqlite_version}; median of 5 runs per statement")
    with tempfile.TemporaryDirectory() as dir:
        for with_indexes in (False, True):
            db = build(os.path.join(dir, f"listings-{with_indexes}.db"), messages, with_indexes)
            print("with the listing indexes" if with_indexes else "without the listing indexes (before 0013)")
            for name, sql, args in STATEMENTS:
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    db.execute(sql, args).fetchall()
                    times.append((time.perf_counter() - started) * 1000)
                plan = "; ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
                print(f"  {name:55s} {sorted(times)[2]:9.2f} ms   {plan}")
            db.close()


if __name__ == "__main__":
    main()
