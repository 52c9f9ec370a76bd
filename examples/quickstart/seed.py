"""Seed the quickstart's two SQLite databases, then make edits on both sides.

    python examples/quickstart/seed.py init    # fresh databases (billing has one extra client)
    python examples/quickstart/seed.py edit    # edits on both sides, two of them concurrent
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

CUSTOMERS = [
    (1, "Ada Lovelace", "ada@example.com", "+44 20 7946 0001", "gold"),
    (2, "Grace Hopper", "grace@example.com", "+1 202 555 0102", "silver"),
    (3, "Alan Turing", "alan@example.com", "+44 20 7946 0003", "silver"),
    (4, "Edsger Dijkstra", "edsger@example.com", "+31 20 555 0104", "bronze"),
]


def init() -> None:
    DATA.mkdir(exist_ok=True)
    for name in ("crm.db", "billing.db", "state.db", "state.db-wal", "state.db-shm"):
        (DATA / name).unlink(missing_ok=True)
    crm = sqlite3.connect(DATA / "crm.db")
    crm.execute("""CREATE TABLE customers (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, phone TEXT, tier TEXT,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""")
    crm.executemany("INSERT INTO customers (id, name, email, phone, tier) VALUES (?,?,?,?,?)",
                    CUSTOMERS)
    crm.commit()
    billing = sqlite3.connect(DATA / "billing.db")
    billing.execute("""CREATE TABLE clients (
        client_id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT, phone TEXT,
        tier TEXT, balance NUMERIC(10,2) NOT NULL DEFAULT 0)""")
    billing.executemany(
        "INSERT INTO clients (client_id, full_name, email, phone, tier) VALUES (?,?,?,?,?)",
        [*CUSTOMERS, (5, "Barbara Liskov", "barbara@example.com", "+1 617 555 0105", "gold")])
    billing.commit()
    print(f"seeded {DATA}/crm.db (4 customers) and {DATA}/billing.db (5 clients)")


def edit() -> None:
    crm = sqlite3.connect(DATA / "crm.db")
    billing = sqlite3.connect(DATA / "billing.db")
    # Customer 1: different columns on each side -> merged by the field_merge policy.
    crm.execute("UPDATE customers SET phone = '+44 20 7946 9999' WHERE id = 1")
    billing.execute("UPDATE clients SET tier = 'platinum' WHERE client_id = 1")
    # Customer 2: the same column on both sides -> parked for a steward.
    crm.execute("UPDATE customers SET email = 'grace.hopper@navy.mil' WHERE id = 2")
    billing.execute("UPDATE clients SET email = 'ghopper@billing.example' WHERE client_id = 2")
    # One-sided edits flow through untouched.
    crm.execute("INSERT INTO customers (id, name, email, phone, tier) "
                "VALUES (6, 'Donald Knuth', 'knuth@example.com', '+1 650 555 0106', 'gold')")
    billing.execute("UPDATE clients SET balance = 120.50 WHERE client_id = 3")  # billing-only
    billing.execute("DELETE FROM clients WHERE client_id = 4")
    crm.commit()
    billing.commit()
    print("edited both sides: 2 concurrent edits of customers 1 and 2, an insert, a delete")


if __name__ == "__main__":
    {"init": init, "edit": edit}[sys.argv[1] if len(sys.argv) > 1 else "init"]()
