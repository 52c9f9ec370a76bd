"""The gate inside ``cdcsync daemon``: every micro-batch is validated before it is applied,
in both directions; later edits of a quarantined key are held; a replay releases them."""

from __future__ import annotations

import json
from typing import Any

from tests.daemon.conftest import reap_daemons  # noqa: F401 - autouse here too
from tests.daemon.helpers import Daemon, cli, wait_for
from tests.quality.conftest import Shop


def statuses(shop: Shop, key: int) -> list[tuple[str, str]]:
    return [(i["endpoint"], i["status"]) for i in shop.items(key=f'{{"id":{key}}}')]


def test_daemon_validates_each_micro_batch_both_ways(shop: Shop) -> None:
    with shop.pipeline.open("a") as f:
        f.write("daemon: {metrics_port: 0, poll_ms: 10, lease_ttl_s: 2}\n")
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active")])
    shop.setup()
    d = Daemon(shop.pipeline)
    d.wait_ready(timeout=120)  # GX is imported before the readers start
    wait_for(lambda: shop.client(1) == ("Ann Lee", "ann@example.com", 10, "active"),
             what="the snapshot to reach billing")

    shop.crm("INSERT INTO customers (id, name, email, amount, status) VALUES "
             "(2, 'Bob Ray', 'bob-at-example.com', 5, 'active')")           # malformed e-mail
    shop.crm("INSERT INTO customers (id, name, email, amount, status) VALUES "
             "(3, 'Cy Dunn', 'cy@example.com', 3, 'active')")
    shop.billing("UPDATE clients SET amount = -40 WHERE client_id = 1")      # negative amount
    shop.billing("INSERT INTO clients VALUES (4, 'Dee Fox', 'dee@example.com', 4, 'paused')")

    def arrived() -> Any:
        return (shop.client(3) == ("Cy Dunn", "cy@example.com", 3, "active")
                and shop.customer(4) == ("Dee Fox", "dee@example.com", 4, "paused"))

    wait_for(arrived, what="the good changes to cross both ways")
    wait_for(lambda: len(shop.items()) == 2, what="two quarantined changes")
    assert statuses(shop, 2) == [("crm", "quarantined")]
    assert statuses(shop, 1) == [("billing", "quarantined")]
    assert shop.client(2) is None
    assert shop.customer(1) == ("Ann Lee", "ann@example.com", 10, "active")

    # A later, good edit of a quarantined key is held, from either side.
    shop.crm("UPDATE customers SET name = 'Ann B. Lee' WHERE id = 1")
    wait_for(lambda: statuses(shop, 1) == [("billing", "quarantined"), ("crm", "held")],
             what="the later edit of key 1 to be held")
    shop.crm("UPDATE customers SET status = 'closed' WHERE id = 3")  # other keys flow
    wait_for(lambda: shop.client(3) == ("Cy Dunn", "cy@example.com", 3, "closed"),
             what="another key's edit to flow")
    assert shop.client(1) == ("Ann Lee", "ann@example.com", -40, "active")
    assert shop.customer(1) == ("Ann B. Lee", "ann@example.com", 10, "active")
    code, _ = d.terminate()
    assert code == 0, d.output()
    assert "Traceback" not in d.output()

    # The steward: billing fixes its row, replay; the held CRM edit follows it.
    shop.billing("UPDATE clients SET amount = 40 WHERE client_id = 1")
    [item] = shop.items(key='{"id":1}', status="quarantined")
    cli("quarantine", "replay", str(shop.pipeline), str(item["id"]))
    cli("run", str(shop.pipeline), expect=3)  # key 2 still waits for a steward
    assert shop.customer(1) == shop.client(1) == ("Ann B. Lee", "ann@example.com", 40, "active")
    assert statuses(shop, 1) == [("billing", "replayed"), ("crm", "replayed")]
    again = json.loads(cli("run", str(shop.pipeline), "--json", expect=3).stdout)
    assert again["totals"]["applied"] == 0
