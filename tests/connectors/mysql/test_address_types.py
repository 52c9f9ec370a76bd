"""MariaDB's UUID, INET6 and INET4 columns, read from the binlog and written by the sink.

The binlog carries an INET6/INET4 value as its stored bytes; they were taken for
text, so the first change to such a table after its snapshot (which reads the
server's text) stopped every run with a CoercionError. They are now spelled
as the server spells them (``connectors.mysql.types.inet_text``, held to the
server's own ``CAST(x'...' AS INET6)`` here), so a row reads alike from the
binlog and from a SELECT, and the sink predicts what such a column holds.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from conflict.canonical import canonical_row, key_text, row_hash
from connectors.base import ApplyOp, ApplyStatus, RowRejected
from connectors.mysql.endpoint import open_endpoint
from connectors.mysql.types import inet_text
from tests.connectors.mysql.helpers import binding, drain, query, run, settings

TABLE = "CREATE TABLE addr (id INT PRIMARY KEY, u UUID, i6 INET6, i4 INET4)"


def _addresses() -> list[bytes]:
    """Edge cases and 2,000 random addresses, rich in zero groups and ffff."""
    out = [bytes(12) + n.to_bytes(4, "big")
           for n in (0, 1, 2, 0xFF, 0xFFFF, 0x10000, 0x0A000001, 0xFFFFFFFF)]
    out += [bytes(10) + b"\xff\xff" + bytes(4), bytes(10) + b"\xff\xfe\x01\x02\x03\x04",
            bytes(10) + b"\x00\x01\x01\x02\x03\x04", bytes(16), b"\xff" * 16]
    rnd = random.Random(20261206)
    for _ in range(2000):
        words = [rnd.choice((0, 0, 0, 1, 0xFFFF, rnd.randrange(65536))) for _ in range(8)]
        out.append(b"".join(w.to_bytes(2, "big") for w in words))
    return out


def test_inet_text_is_the_servers_own_spelling(mariadb_params: dict[str, Any]) -> None:
    cases = _addresses()
    for i in range(0, len(cases), 250):
        part = cases[i : i + 250]
        got = query(mariadb_params, "SELECT " + ", ".join(
            f"CAST(x'{b.hex()}' AS INET6), CAST(x'{b[12:].hex()}' AS INET4)" for b in part))[0]
        want = [t for b in part for t in (inet_text(b), inet_text(b[12:]))]
        assert list(got) == want


def test_uuid_and_address_columns_read_alike_from_the_binlog_and_a_select(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-addr")
    try:
        start = ep.source.log_end()
        run(mariadb_params,
            "INSERT INTO addr VALUES (1, '6ccd780c-baba-1026-9564-5b8c656024db',"
            " '::ffff:1.2.3.4', '10.0.0.1'), (2, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
            " '2001:db8:0:1:0:0:0:1', '255.255.255.255'), (3, NULL, '::1.2.3.4', NULL)",
            "UPDATE addr SET i6 = '1:0:2:3:4:5:6:7' WHERE id = 3")
        changes, _, _ = drain(ep.source, [binding("addr")], start)
        from_log = {c.key["id"]: dict(c.after or {}) for c in changes}  # (the last of each)
        ep.position()
        from_select = {r.key["id"]: dict(r.row)
                       for r in ep.snapshot(binding("addr"), None, 10).rows}
        for i in (1, 2, 3):
            assert canonical_row(from_log[i]) == canonical_row(from_select[i]), i
            assert row_hash(from_log[i]) == row_hash(from_select[i])
        assert from_log[1]["i6"] == "::ffff:1.2.3.4" and from_log[1]["i4"] == "10.0.0.1"
        assert str(from_log[1]["u"]) == "6ccd780c-baba-1026-9564-5b8c656024db"
        assert from_log[2]["i6"] == "2001:db8:0:1::1" and from_log[3]["i6"] == "1::2:3:4:5:6:7"
    finally:
        ep.close()


def test_addresses_in_other_spellings_are_stored_as_the_sink_predicts(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-addr2")
    ep.setup([binding("addr")], "t-addr2")
    try:
        row = {"id": 1, "i6": "2001:0DB8:0000:0000:0000:0000:0000:0001", "i4": "10.0.0.1"}
        res = ep.apply(binding("addr"), [ApplyOp({"id": 1}, row, None, "t")])
        assert res[0].status is ApplyStatus.APPLIED
        back, version = ep.read(binding("addr"), [{"id": 1}])[key_text({"id": 1})]
        assert (back["i6"], back["i4"]) == ("2001:db8::1", "10.0.0.1")
        assert version == res[0].row_version  # predicted without reading it back
        again = ep.apply(binding("addr"), [ApplyOp({"id": 1}, row, version, "t")])
        assert again[0].status is ApplyStatus.ALREADY
        with pytest.raises(RowRejected,
                           match=r"column 'i6' \(INET6\) holds addresses, not '10.0.0.0/8'"):
            ep.apply(binding("addr"), [ApplyOp({"id": 2}, {"id": 2, "i6": "10.0.0.0/8"},
                                               None, "t")])
    finally:
        ep.close()
