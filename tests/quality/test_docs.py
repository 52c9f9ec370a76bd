"""``cdcsync quality docs``: GX Data Docs of the rows waiting in quarantine."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

from tests.quality.conftest import Shop, make_shop


def cdcsync(*args: str, expect: int = 0) -> Result:
    from sync.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == expect, (res.exit_code, res.stdout, res.stderr)
    return res


def text_of(page: Path) -> str:
    html = page.read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_docs_show_each_quarantined_row_under_the_expectation_it_fails(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active"),
                   (3, "Cy Dunn", "cy@example.com", -3, "active")])
    shop.billing.many("INSERT INTO clients VALUES (?,?,?,?,?)",
                      [(11, "Fay Wong", "fay@example.com", 1, "suspended")])
    shop.setup()
    shop.run()
    ids = {i["key"]: i["id"] for i in shop.items()}
    assert set(ids) == {'{"id":2}', '{"id":3}', '{"id":11}'}

    out = shop.dir / "site"
    res = cdcsync("quality", "docs", str(shop.pipeline), "--output", str(out))
    lines = res.stdout.splitlines()
    assert lines[-1] == f"Data Docs: {out / 'index.html'}"
    m = re.fullmatch(r"customers: 3 quarantined row\(s\), (\d) expectation\(s\) failing: (.+)",
                     lines[0])
    assert m, lines
    assert m.group(1) == "3"  # the e-mail regex, the amount range, the status set
    page = Path(m.group(2))
    assert page.is_file() and page.is_relative_to(out / "validations")
    assert (out / "index.html").is_file()

    text = text_of(page)
    assert "Unsuccessful Expectations 3" in text
    for seen in ("bob-at-example.com", "-3", "suspended"):
        assert seen in text, seen
    # The table of failing values names each row by its quarantine item id.
    assert "Unexpected Value Count quarantine_item" in text
    bob, fay = ids['{"id":2}'], ids['{"id":11}']
    assert f"bob-at-example.com 1 {bob} " in text
    assert f"suspended 1 {fay} " in text
    assert "ann@example.com" not in text  # rows that passed are not in quarantine
    assert "index.html" in "".join(p.name for p in out.iterdir())

    # After the steward's decisions nothing waits; the site says so.
    for item_id in ids.values():
        cdcsync("quarantine", "discard", str(shop.pipeline), str(item_id), "--reason", "test")
    again = cdcsync("quality", "docs", str(shop.pipeline), "--output", str(shop.dir / "after"))
    assert again.stdout.splitlines()[0] == "customers: nothing in quarantine"


def test_docs_default_place_and_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    shop = make_shop(tmp_path / "with")
    shop.setup()
    shop.run()
    res = cdcsync("quality", "docs", str(shop.pipeline))
    assert res.stdout.splitlines() == [
        "customers: nothing in quarantine",
        f"Data Docs: {shop.dir / 'quality' / 'docs' / 'index.html'}"]
    assert (shop.dir / "quality" / "docs" / "index.html").is_file()
    bad = cdcsync("quality", "docs", str(shop.pipeline), "--entity", "orders", expect=2)
    assert "entity 'orders' has no quality suite; those with one: customers" in bad.stderr

    plain = make_shop(tmp_path / "without", suite=None)
    res = cdcsync("quality", "docs", str(plain.pipeline), expect=2)
    assert f"no entity of {plain.pipeline} has a quality suite" in res.stderr
