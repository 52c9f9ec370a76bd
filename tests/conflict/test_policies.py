"""Conflict resolution policies (DESIGN.md, "Conflicts", rule 6)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conflict.canonical import row_hash, rows_equal
from conflict.case import ConflictCase, Decision, Park, Resolution, Side, Winner
from conflict.policies import (
    NO_DECISION,
    Chain,
    ColumnPolicy,
    Custom,
    DeleteRule,
    EndpointPriority,
    FieldMerge,
    LastWriterWins,
    Manual,
    PerColumn,
    Policy,
    PolicyError,
    build_resolver,
)
from conflict.vector import VersionVector
from tests.conflict import sample_policies

T0 = dt.datetime(2026, 11, 21, 10, 0, 0, tzinfo=dt.UTC).timestamp()
SAMPLES = "tests.conflict.sample_policies"


def side(endpoint: str, content: Mapping[str, Any] | None, at: float = T0) -> Side:
    return Side(endpoint, VersionVector({endpoint or "x": 1}), content, at)


def case_of(current: Side, incoming: Side, base: Mapping[str, Any] | None = None) -> ConflictCase:
    return ConflictCase("customer", {"id": 1}, current, incoming, base)


def swapped(case: ConflictCase) -> ConflictCase:
    return ConflictCase(case.entity, case.key, case.incoming, case.current, case.base)


def resolved(decision: Decision | None) -> Resolution:
    assert isinstance(decision, Resolution), decision
    return decision


def parked(decision: Decision | None) -> Park:
    assert isinstance(decision, Park), decision
    return decision


def row(**values: Any) -> dict[str, Any]:
    return {"id": 1, **values}


# --- last writer wins -----------------------------------------------------------------


def test_lww_later_incoming_wins_with_readable_reason() -> None:
    case = case_of(side("billing", row(name="Ann")), side("crm", row(name="Anne"), T0 + 1))
    r = resolved(LastWriterWins().decide(case))
    assert r.winner is Winner.INCOMING
    assert r.content is case.incoming.content
    assert r.policy == "last_writer_wins"
    assert r.reason == (
        "crm's edit at 2026-11-21T10:00:01Z is later than billing's at 2026-11-21T10:00:00Z"
    )


def test_lww_later_current_wins() -> None:
    case = case_of(side("crm", row(name="Anne"), T0 + 0.25), side("billing", row(name="Ann")))
    r = resolved(LastWriterWins().decide(case))
    assert r.winner is Winner.CURRENT
    assert r.content is case.current.content
    assert r.reason.startswith("crm's edit at 2026-11-21T10:00:00.250000Z is later than billing's")


def test_lww_timestamp_tie_goes_to_greater_endpoint_name_from_either_side() -> None:
    case = case_of(side("billing", row(name="Ann")), side("crm", row(name="Anne")))
    r = resolved(LastWriterWins().decide(case))
    s = resolved(LastWriterWins().decide(swapped(case)))
    assert r.content == s.content == row(name="Anne")
    assert (r.winner, s.winner) == (Winner.INCOMING, Winner.CURRENT)
    assert "tie broken by endpoint name: 'crm' > 'billing'" in r.reason


def test_lww_compares_commit_times_to_the_microsecond() -> None:
    # 0.1 us apart is one instant to every engine: the endpoint name decides, not the float.
    case = case_of(side("crm", row(name="Anne"), T0), side("billing", row(name="Ann"), T0 + 1e-7))
    r = resolved(LastWriterWins().decide(case))
    assert r.winner is Winner.CURRENT
    assert "tie broken by endpoint name" in r.reason


def test_lww_same_endpoint_and_time_goes_to_greater_content_hash() -> None:
    a, b = row(name="Ann"), row(name="Anne")
    greater = a if row_hash(a) > row_hash(b) else b
    case = case_of(side("crm", a), side("crm", b))
    for c in (case, swapped(case)):
        r = resolved(LastWriterWins().decide(c))
        assert r.content == greater
        assert "tie broken by content hash" in r.reason


def test_lww_full_tie_keeps_current_whose_content_is_canonically_the_same() -> None:
    case = case_of(side("crm", row(price=Decimal("1.50"))), side("crm", row(price=Decimal("1.5"))))
    r = resolved(LastWriterWins().decide(case))
    assert r.winner is Winner.CURRENT
    assert r.content is case.current.content


def test_lww_later_delete_wins_and_earlier_delete_loses() -> None:
    later_delete = case_of(side("crm", row(name="Anne")), side("billing", None, T0 + 5))
    r = resolved(LastWriterWins().decide(later_delete))
    assert (r.winner, r.content) == (Winner.INCOMING, None)
    assert r.reason.startswith("billing's delete at 2026-11-21T10:00:05Z is later than crm's")

    earlier_delete = case_of(side("crm", row(name="Anne"), T0 + 5), side("billing", None))
    r = resolved(LastWriterWins().decide(earlier_delete))
    assert (r.winner, r.content) == (Winner.CURRENT, row(name="Anne"))


def test_lww_delete_loses_a_full_tie_against_an_update() -> None:
    case = case_of(side("crm", None), side("crm", row(name="Anne")))
    for c in (case, swapped(case)):
        assert resolved(LastWriterWins().decide(c)).content == row(name="Anne")


def test_lww_names_sides_by_role_when_they_share_an_endpoint() -> None:
    case = case_of(side("crm", row(name="a")), side("crm", row(name="b"), T0 + 1))
    r = resolved(LastWriterWins().decide(case))
    assert r.reason.startswith("crm (incoming)'s edit at 2026-11-21T10:00:01Z is later than "
                               "crm (current)'s at")


def test_lww_by_a_timestamp_column_goes_by_the_rows_values_before_commit_times() -> None:
    """An application's ``updated_at`` decides, whichever side committed later."""
    early, late = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    case = case_of(side("crm", row(name="Anne", updated_at=late)),
                   side("billing", row(name="Ann", updated_at=early), T0 + 60))
    for c in (case, swapped(case)):
        r = resolved(LastWriterWins("updated_at").decide(c))
        assert r.content == row(name="Anne", updated_at=late)
    assert resolved(LastWriterWins("updated_at").decide(case)).reason == (
        "crm's row has updated_at 2026-02-01T00:00:00+00:00, later than billing's"
        " 2026-01-01T00:00:00+00:00")
    assert resolved(LastWriterWins().decide(case)).content == row(name="Ann", updated_at=early)


@pytest.mark.parametrize(("cur", "inc"), [
    ({"updated_at": 5}, None),  # a deletion has no value
    ({"updated_at": None}, {"updated_at": 3}),  # NULL
    ({"updated_at": 4}, {"updated_at": 4}),  # equal
    ({"updated_at": dt.datetime(2026, 1, 2)},  # naive against aware: no order
     {"updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}),
    ({"name": "x"}, {"updated_at": 3}),  # a row without the column
])
def test_lww_by_a_timestamp_column_falls_back_to_commit_times(
        cur: dict[str, Any], inc: dict[str, Any] | None) -> None:
    case = case_of(side("crm", row(**cur)), side("billing", inc and row(**inc), T0 + 1))
    r = resolved(LastWriterWins("updated_at").decide(case))
    assert r.winner is Winner.INCOMING and "is later than crm's at" in r.reason, r.reason


def test_build_passes_the_timestamp_column_to_every_last_writer_wins() -> None:
    late = {**BASE, "phone": "2", "updated_at": 2}
    case = case_of(side("crm", late), side("billing", {**BASE, "phone": "3", "updated_at": 1},
                                           T0 + 1), {**BASE, "updated_at": 0})
    lww = ColumnConfig("last_writer_wins")
    for cfg in (EntityConfig(timestamp_column="updated_at"),
                EntityConfig(policy="field_merge", fallback="last_writer_wins",
                             timestamp_column="updated_at"),
                EntityConfig(policy="manual", columns={"phone": lww, "updated_at": lww},
                             timestamp_column="updated_at")):
        r = resolved(build_resolver(cfg).decide(case))
        assert r.content == late and "updated_at 2, later" in r.reason, (cfg, r)


# --- endpoint priority --------------------------------------------------------------


def test_priority_first_listed_endpoint_wins_on_either_side() -> None:
    policy = EndpointPriority(["billing", "crm"])
    case = case_of(side("crm", row(name="Anne"), T0 + 9), side("billing", row(name="Ann")))
    r = resolved(policy.decide(case))
    assert (r.winner, r.content, r.policy) == (Winner.INCOMING, row(name="Ann"), "priority")
    assert r.reason == "billing ranks above crm in the priority order [billing, crm]"
    s = resolved(policy.decide(swapped(case)))
    assert (s.winner, s.content) == (Winner.CURRENT, row(name="Ann"))


def test_priority_listed_endpoint_beats_unlisted() -> None:
    policy = EndpointPriority(["erp"])
    case = case_of(side("erp", row(name="Ann")), side("crm", row(name="Anne")))
    r = resolved(policy.decide(case))
    assert r.winner is Winner.CURRENT
    assert r.reason == "erp is in the priority order [erp] and crm is not"


@pytest.mark.parametrize(
    ("current", "incoming"), [("crm", "billing"), ("crm", "crm"), ("erp", "erp")]
)
def test_priority_cannot_tell_unlisted_or_same_endpoints_apart(current: str, incoming: str) -> None:
    case = case_of(side(current, row(name="a")), side(incoming, row(name="b")))
    assert EndpointPriority(["erp"]).decide(case) is None


def test_priority_deletion_from_the_stronger_endpoint_wins() -> None:
    case = case_of(side("crm", row(name="Anne"), T0 + 9), side("billing", None))
    r = resolved(EndpointPriority(["billing"]).decide(case))
    assert (r.winner, r.content) == (Winner.INCOMING, None)


def test_priority_first_occurrence_of_a_repeated_endpoint_counts() -> None:
    policy = EndpointPriority(["crm", "billing", "crm"])
    assert policy.rank("crm") == 0
    assert policy.rank("billing") == 1
    assert policy.rank("erp") == 3


def test_priority_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match="not one string"):
        EndpointPriority("crm")


# --- field merge --------------------------------------------------------------------

BASE = row(name="Ann", email="ann@old", phone="111", price=Decimal("1.50"), vip=1)


def test_field_merge_combines_disjoint_edits() -> None:
    cur = {**BASE, "phone": "222"}
    inc = {**BASE, "email": "ann@new"}
    case = case_of(side("crm", cur), side("billing", inc), BASE)
    r = resolved(FieldMerge().decide(case))
    assert r.winner is Winner.MERGED
    assert r.content == {**BASE, "phone": "222", "email": "ann@new"}
    assert r.policy == "field_merge"
    assert r.reason == "disjoint edits merged: crm changed phone; billing changed email"


def test_field_merge_merged_content_equal_to_a_side_is_that_side() -> None:
    only_current = case_of(side("crm", {**BASE, "phone": "222"}), side("billing", BASE), BASE)
    r = resolved(FieldMerge().decide(only_current))
    assert r.winner is Winner.CURRENT
    assert r.content is only_current.current.content

    only_incoming = case_of(side("crm", BASE), side("billing", {**BASE, "phone": "222"}), BASE)
    r = resolved(FieldMerge().decide(only_incoming))
    assert r.winner is Winner.INCOMING
    assert r.content is only_incoming.incoming.content


def test_field_merge_overlapping_edits_fall_through() -> None:
    case = case_of(side("crm", {**BASE, "name": "Anne"}), side("billing", {**BASE, "name": "Anna"}),
                   BASE)
    assert FieldMerge().decide(case) is None


def test_field_merge_edits_agreeing_on_a_column_are_no_conflict() -> None:
    cur = {**BASE, "name": "Anne", "phone": "222"}
    inc = {**BASE, "name": "Anne", "email": "ann@new"}
    case = case_of(side("crm", cur), side("billing", inc), BASE)
    r = resolved(FieldMerge().decide(case))
    assert r.content == {**BASE, "name": "Anne", "phone": "222", "email": "ann@new"}
    assert r.reason == ("disjoint edits merged: crm changed phone; billing changed email; "
                        "both changed name to the same value")


def test_field_merge_decimal_scale_is_no_change() -> None:
    # current re-wrote price as 1.5 (same number); incoming really changed it.
    cur = {**BASE, "price": Decimal("1.5"), "phone": "222"}
    inc = {**BASE, "price": Decimal("2.00")}
    r = resolved(FieldMerge().decide(case_of(side("crm", cur), side("billing", inc), BASE)))
    assert r.winner is Winner.MERGED
    assert r.content == {**BASE, "price": Decimal("2.00"), "phone": "222"}


def test_field_merge_same_number_in_two_scales_is_agreement() -> None:
    cur = {**BASE, "price": Decimal("2.0"), "phone": "222"}
    inc = {**BASE, "price": Decimal("2.00")}
    r = resolved(FieldMerge().decide(case_of(side("crm", cur), side("billing", inc), BASE)))
    assert r.winner is Winner.CURRENT
    assert r.content is cur


def test_field_merge_true_is_not_one() -> None:
    # base vip=1; current wrote True (a change of type, hence of value); incoming wrote 0.
    cur = {**BASE, "vip": True}
    inc = {**BASE, "vip": 0}
    assert FieldMerge().decide(case_of(side("crm", cur), side("billing", inc), BASE)) is None


def test_field_merge_needs_a_base_and_two_rows() -> None:
    present = side("crm", {**BASE, "phone": "222"})
    assert FieldMerge().decide(case_of(present, side("billing", BASE))) is None
    assert FieldMerge().decide(case_of(present, side("billing", None), BASE)) is None
    assert FieldMerge().decide(case_of(side("billing", None), present, BASE)) is None


def test_field_merge_key_only_before_image_falls_through() -> None:
    # PostgreSQL's default replica identity gives the key only: nothing is known to be unchanged.
    cur = {**BASE, "phone": "222"}
    inc = {**BASE, "email": "ann@new"}
    assert FieldMerge().decide(case_of(side("crm", cur), side("billing", inc), {"id": 1})) is None


def test_field_merge_column_added_by_one_side_is_its_edit() -> None:
    cur = {**BASE, "phone": "222"}
    inc = {**BASE, "note": "hi"}
    r = resolved(FieldMerge().decide(case_of(side("crm", cur), side("billing", inc), BASE)))
    assert r.content == {**BASE, "phone": "222", "note": "hi"}


def test_field_merge_decides_single_columns() -> None:
    cur = {**BASE, "name": "Anne", "phone": "222"}
    inc = {**BASE, "name": "Anna", "email": "ann@new"}
    case = case_of(side("crm", cur), side("billing", inc), BASE)
    policy = FieldMerge()
    assert isinstance(policy, ColumnPolicy)
    assert resolved(policy.decide_column(case, "phone")).winner is Winner.CURRENT
    email = resolved(policy.decide_column(case, "email"))
    assert (email.winner, email.reason) == (Winner.INCOMING, "only billing changed email")
    assert policy.decide_column(case, "name") is None
    assert policy.decide_column(case_of(side("crm", cur), side("billing", inc)), "phone") is None


# --- custom -------------------------------------------------------------------------


def plain_case() -> ConflictCase:
    return case_of(side("crm", row(name="Anne")), side("billing", row(name="Ann"), T0 + 1))


def test_custom_resolution_is_taken_under_the_custom_name_with_winner_by_content() -> None:
    policy = Custom(f"{SAMPLES}:pick_incoming")
    assert policy.name == f"custom:{SAMPLES}:pick_incoming"
    case = plain_case()
    r = resolved(policy.decide(case))
    assert (r.winner, r.content) == (Winner.INCOMING, case.incoming.content)
    assert (r.policy, r.reason) == (policy.name, "billing is the ledger")


def test_custom_resolution_deleting_the_record() -> None:
    r = resolved(Custom(f"{SAMPLES}:delete_it").decide(plain_case()))
    assert (r.winner, r.content) == (Winner.MERGED, None)
    assert r.reason == f"decided by {SAMPLES}:delete_it"


def test_custom_park() -> None:
    p = parked(Custom(f"{SAMPLES}:park").decide(plain_case()))
    assert (p.policy, p.reason) == (f"custom:{SAMPLES}:park", "needs finance")
    p = parked(Custom(f"{SAMPLES}:park_silently").decide(plain_case()))
    assert p.reason == f"parked by {SAMPLES}:park_silently"


def test_custom_mapping_is_the_content_and_its_winner_is_found_by_comparison() -> None:
    case = plain_case()
    merged = resolved(Custom(f"{SAMPLES}:combine_names").decide(case))
    assert (merged.winner, merged.content) == (Winner.MERGED, row(name="Anne / Ann"))
    same = resolved(Custom(f"{SAMPLES}:same_as_current").decide(case))
    assert same.winner is Winner.CURRENT
    assert same.content is case.current.content


def test_custom_none_falls_through_and_dotted_form_imports() -> None:
    assert Custom(f"{SAMPLES}.no_opinion").decide(plain_case()) is None


def test_custom_nested_attribute_and_callable_object() -> None:
    p = parked(Custom(f"{SAMPLES}:Steward.decide").decide(plain_case()))
    assert p.reason == "from a static method"
    r = resolved(Custom(f"{SAMPLES}:counting").decide(plain_case()))
    assert r.winner is Winner.INCOMING


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("explode", f"custom policy '{SAMPLES}:explode' raised ValueError: boom"),
        ("wrong_type", f"custom policy '{SAMPLES}:wrong_type' returned int; expected a "
                       "Resolution, a Park, a row mapping or None"),
        ("bad_resolution", f"custom policy '{SAMPLES}:bad_resolution' returned a Resolution "
                           "whose content is list, not a row mapping or None"),
        ("uncomparable", f"custom policy '{SAMPLES}:uncomparable' returned a row that cannot "
                         "be compared: no canonical form for object"),
    ],
)
def test_custom_failure_is_a_policy_error_naming_the_path(function: str, message: str) -> None:
    policy = Custom(f"{SAMPLES}:{function}")
    with pytest.raises(PolicyError) as info:
        policy.decide(plain_case())
    assert str(info.value) == message
    assert info.value.field is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.conflict.no_such_module:fn",
         "custom policy 'tests.conflict.no_such_module:fn': cannot import module "
         "'tests.conflict.no_such_module': No module named 'tests.conflict.no_such_module'"),
        (f"{SAMPLES}:nope",
         f"custom policy '{SAMPLES}:nope': module '{SAMPLES}' has no attribute 'nope'"),
        (f"{SAMPLES}.nope",
         f"custom policy '{SAMPLES}.nope': module '{SAMPLES}' has no attribute 'nope'"),
        (f"{SAMPLES}:NOT_CALLABLE",
         f"custom policy '{SAMPLES}:NOT_CALLABLE': 'NOT_CALLABLE' is a int, not a callable"),
        ("resolve", "custom policy 'resolve': expected 'package.module:callable' or "
                    "'package.module.callable'"),
        (f"{SAMPLES}:", f"custom policy '{SAMPLES}:': expected 'package.module:callable' or "
                        "'package.module.callable'"),
    ],
)
def test_custom_path_that_does_not_resolve_fails_at_construction(path: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        Custom(path)
    assert str(info.value) == message


def test_custom_module_failing_at_import_fails_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_policy_module.py").write_text("raise RuntimeError('bad settings')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PolicyError) as info:
        Custom("broken_policy_module:decide")
    assert str(info.value) == ("custom policy 'broken_policy_module:decide': importing module "
                               "'broken_policy_module' failed: RuntimeError: bad settings")
    assert "broken_policy_module" not in sys.modules


def test_custom_imports_a_module_outside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "steward_rules_mod.py").write_text(
        "def prefer_billing(case):\n"
        "    return case.incoming.content if case.incoming.endpoint == 'billing' else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    r = resolved(Custom("steward_rules_mod.prefer_billing").decide(plain_case()))
    assert r.winner is Winner.INCOMING
    monkeypatch.delitem(sys.modules, "steward_rules_mod")


# --- manual, delete rule, chain --------------------------------------------------------


def test_manual_always_parks() -> None:
    p = parked(Manual().decide(plain_case()))
    assert p.policy == "manual"
    assert p.reason == (
        "left to a data steward: crm's edit at 2026-11-21T10:00:00Z and billing's edit at "
        "2026-11-21T10:00:01Z are concurrent"
    )


def delete_case(deleting: str) -> ConflictCase:
    updated = side("crm", row(name="Anne"), T0 + 9)
    deleted = side("billing", None)
    return case_of(deleted, updated) if deleting == "current" else case_of(updated, deleted)


@pytest.mark.parametrize("deleting", ["current", "incoming"])
def test_delete_rule_delete_wins(deleting: str) -> None:
    r = resolved(DeleteRule("delete_wins").decide(delete_case(deleting)))
    assert (r.winner.value, r.content, r.policy) == (deleting, None, "delete_wins")
    assert r.reason == ("billing's delete at 2026-11-21T10:00:00Z is concurrent with crm's edit "
                        "at 2026-11-21T10:00:09Z; on_delete is delete_wins")


@pytest.mark.parametrize("deleting", ["current", "incoming"])
def test_delete_rule_update_wins(deleting: str) -> None:
    r = resolved(DeleteRule("update_wins").decide(delete_case(deleting)))
    assert r.winner.value != deleting
    assert (r.content, r.policy) == (row(name="Anne"), "update_wins")


def test_delete_rule_passes_when_deferred_or_not_a_delete_update_conflict() -> None:
    assert DeleteRule("policy").decide(delete_case("current")) is None
    both_deleted = case_of(side("crm", None), side("billing", None))
    assert DeleteRule("delete_wins").decide(both_deleted) is None
    assert DeleteRule("update_wins").decide(plain_case()) is None


def test_delete_rule_refuses_unknown_mode() -> None:
    with pytest.raises(PolicyError, match="unknown delete rule 'newest'; expected one of policy, "
                                          "delete_wins, update_wins"):
        DeleteRule("newest")


def test_chain_takes_the_first_decision() -> None:
    case = plain_case()
    r = resolved(Chain(EndpointPriority(["erp"]), FieldMerge(), LastWriterWins()).decide(case))
    assert (r.policy, r.winner) == ("last_writer_wins", Winner.INCOMING)
    r = resolved(Chain(EndpointPriority(["crm"]), LastWriterWins()).decide(case))
    assert (r.policy, r.winner) == ("priority", Winner.CURRENT)


def test_chain_parks_when_nothing_decides() -> None:
    p = parked(Chain(DeleteRule("policy"), EndpointPriority(["erp"]), FieldMerge())
               .decide(plain_case()))
    assert (p.policy, p.reason) == ("chain", NO_DECISION)
    assert parked(Chain().decide(plain_case())).reason == "no policy could decide"


def test_chain_lets_a_custom_failure_through() -> None:
    with pytest.raises(PolicyError, match="raised ValueError: boom"):
        Chain(Custom(f"{SAMPLES}:explode"), LastWriterWins()).decide(plain_case())


# --- per column ---------------------------------------------------------------------


def test_per_column_mixes_priority_on_one_column_and_lww_on_the_others() -> None:
    policy = PerColumn(LastWriterWins(), {"price": EndpointPriority(["billing"])})
    cur = row(name="Anne", price=Decimal("9.90"), email="a@x")
    inc = row(name="Ann", price=Decimal("9.50"), email="a@x", phone="111")
    case = case_of(side("billing", cur), side("crm", inc, T0 + 1))
    r = resolved(policy.decide(case))
    assert r.winner is Winner.MERGED
    assert r.policy == "per_column"
    assert r.content == row(name="Ann", price=Decimal("9.90"), email="a@x", phone="111")
    assert r.reason == (
        "name, phone from crm by last_writer_wins (crm's edit at 2026-11-21T10:00:01Z is later "
        "than billing's at 2026-11-21T10:00:00Z); price from billing by priority (billing is in "
        "the priority order [billing] and crm is not)"
    )
    assert rows_equal(resolved(policy.decide(swapped(case))).content, r.content)


def test_per_column_undecided_column_goes_to_default() -> None:
    policy = PerColumn(LastWriterWins(), {"name": EndpointPriority(["erp"])})
    case = plain_case()
    r = resolved(policy.decide(case))
    assert (r.winner, r.content) == (Winner.INCOMING, case.incoming.content)
    assert r.reason.startswith("name from billing by last_writer_wins")


def test_per_column_park_of_one_column_parks_the_record() -> None:
    policy = PerColumn(LastWriterWins(), {"salary": Manual()})
    cur, inc = row(name="A", salary=1), row(name="B", salary=2)
    p = parked(policy.decide(case_of(side("crm", cur), side("hr", inc))))
    assert p.policy == "manual"
    assert p.reason.startswith("column salary: left to a data steward")
    # The parking column's policy is not asked when that column agrees.
    calm = resolved(policy.decide(case_of(side("crm", cur), side("hr", row(name="B", salary=1)))))
    assert calm.policy == "per_column"


def test_per_column_deletion_is_the_default_s_to_decide() -> None:
    policy = PerColumn(LastWriterWins(), {"name": Manual()})
    case = case_of(side("crm", row(name="Anne")), side("billing", None, T0 + 1))
    r = resolved(policy.decide(case))
    assert (r.policy, r.content) == ("last_writer_wins", None)
    assert PerColumn(EndpointPriority(["erp"]), {}).decide(case) is None


def test_per_column_equal_content_keeps_current() -> None:
    case = case_of(side("crm", row(price=Decimal("1.0"))), side("billing", row(price=1)))
    r = resolved(PerColumn(Manual(), {}).decide(case))
    assert r.winner is Winner.CURRENT
    assert r.content is case.current.content


def test_per_column_passes_when_default_cannot_decide_a_column() -> None:
    policy = PerColumn(EndpointPriority(["erp"]), {"price": LastWriterWins()})
    case = case_of(side("crm", row(name="A", price=1)), side("billing", row(name="B", price=2)))
    assert policy.decide(case) is None


def test_per_column_with_field_merge_decides_column_by_column() -> None:
    # Both sides changed price (priority decides it); each changed one more column alone.
    base = row(name="Ann", email="ann@old", phone="111", price=1)
    cur = {**base, "price": 2, "phone": "222"}
    inc = {**base, "price": 3, "email": "ann@new"}
    policy = PerColumn(Chain(FieldMerge(), Manual()), {"price": EndpointPriority(["billing"])})
    case = case_of(side("crm", cur), side("billing", inc), base)
    r = resolved(policy.decide(case))
    assert r.content == {**base, "price": 3, "phone": "222", "email": "ann@new"}
    assert "price from billing by priority" in r.reason
    assert "phone from crm by field_merge (only crm changed phone)" in r.reason
    # A column both changed with no policy of its own reaches the chain's end: parked.
    both = case_of(side("crm", {**cur, "name": "Anne"}), side("billing", {**inc, "name": "Anna"}),
                   base)
    p = parked(policy.decide(both))
    assert (p.policy, p.reason.split(":")[0]) == ("manual", "column name")


def test_per_column_asks_a_whole_record_policy_once() -> None:
    picker = Custom(f"{SAMPLES}:counting")
    before = sample_policies.counting.calls
    policy = PerColumn(LastWriterWins(), {"a": picker, "b": picker, "c": picker})
    case = case_of(side("crm", row(a=1, b=1, c=1)), side("billing", row(a=2, b=2, c=2)))
    r = resolved(policy.decide(case))
    assert r.winner is Winner.INCOMING
    assert sample_policies.counting.calls == before + 1


def test_per_column_takes_a_merged_column_value_from_the_merge() -> None:
    policy = PerColumn(LastWriterWins(), {"name": Custom(f"{SAMPLES}:combine_names")})
    case = case_of(side("crm", row(name="Anne", phone="1")),
                   side("billing", row(name="Ann", phone="2"), T0 + 1))
    r = resolved(policy.decide(case))
    assert r.content == row(name="Anne / Ann", phone="2")
    assert "name from a merge by custom:" in r.reason


def test_per_column_parks_a_column_policy_that_deletes_the_record() -> None:
    policy = PerColumn(LastWriterWins(), {"name": Custom(f"{SAMPLES}:delete_it")})
    p = parked(policy.decide(plain_case()))
    assert p.reason == (f"column name: custom:{SAMPLES}:delete_it chose to delete the record, "
                        "which a column's policy cannot do")


# --- build_resolver -----------------------------------------------------------------


@dataclass
class ColumnConfig:
    policy: str
    priority: list[str] = field(default_factory=list)
    function: str | None = None


@dataclass
class EntityConfig:
    policy: str = "last_writer_wins"
    fallback: str = "manual"
    priority: list[str] = field(default_factory=list)
    function: str | None = None
    on_delete: str = "policy"
    columns: dict[str, ColumnConfig] = field(default_factory=dict)
    timestamp_column: str | None = None


def test_build_last_writer_wins() -> None:
    r = resolved(build_resolver(EntityConfig()).decide(plain_case()))
    assert (r.policy, r.winner) == ("last_writer_wins", Winner.INCOMING)


def test_build_field_merge_falls_back_when_edits_overlap() -> None:
    resolver = build_resolver(EntityConfig(policy="field_merge", fallback="manual"))
    disjoint = case_of(side("crm", {**BASE, "phone": "2"}), side("billing", {**BASE, "vip": 0}),
                       BASE)
    assert resolved(resolver.decide(disjoint)).policy == "field_merge"
    overlap = case_of(side("crm", {**BASE, "phone": "2"}), side("billing", {**BASE, "phone": "3"}),
                      BASE)
    assert parked(resolver.decide(overlap)).policy == "manual"
    lww = build_resolver(EntityConfig(policy="field_merge", fallback="last_writer_wins"))
    assert resolved(lww.decide(overlap)).policy == "last_writer_wins"


@pytest.mark.parametrize(("on_delete", "content"), [("delete_wins", None),
                                                     ("update_wins", row(name="Anne"))])
def test_build_delete_rule_comes_first(on_delete: str, content: dict[str, Any] | None) -> None:
    resolver = build_resolver(EntityConfig(policy="priority", priority=["billing"],
                                           on_delete=on_delete))
    r = resolved(resolver.decide(delete_case("incoming")))
    assert (r.policy, r.content) == (on_delete, content)


def test_build_priority_and_custom() -> None:
    prio = build_resolver(EntityConfig(policy="priority", priority=["crm"], fallback="manual"))
    assert resolved(prio.decide(plain_case())).winner is Winner.CURRENT
    custom = build_resolver(EntityConfig(policy="custom", function=f"{SAMPLES}:no_opinion",
                                         fallback="priority", priority=["billing"]))
    assert resolved(custom.decide(plain_case())).policy == "priority"
    assert parked(build_resolver(EntityConfig(policy="manual")).decide(plain_case())).policy \
        == "manual"


def test_build_columns_keep_their_policy_and_inherit_the_priority_list() -> None:
    spec = EntityConfig(policy="field_merge", fallback="last_writer_wins", priority=["billing"],
                        columns={"price": ColumnConfig("priority")})
    base = row(name="Ann", price=1)
    cur = {**base, "name": "Anne", "price": 2}
    inc = {**base, "name": "Anna", "price": 3}
    case = case_of(side("billing", cur), side("crm", inc, T0 + 1), base)
    r = resolved(build_resolver(spec).decide(case))
    # name: field merge cannot, the fallback (LWW) picks crm; price: billing by priority.
    assert r.content == {**base, "name": "Anna", "price": 2}
    assert r.policy == "per_column"


@pytest.mark.parametrize(
    ("spec", "where", "message"),
    [
        (EntityConfig(policy="newest"), "policy",
         "unknown conflict policy 'newest'; expected one of last_writer_wins, priority, "
         "field_merge, manual, custom"),
        (EntityConfig(fallback="coin"), "fallback", "unknown conflict policy 'coin'"),
        (EntityConfig(policy="priority"), "priority",
         "policy 'priority' needs a list of endpoints (policy)"),
        (EntityConfig(fallback="custom"), "function",
         "policy 'custom' needs a function (fallback)"),
        (EntityConfig(policy="custom", function="tests.conflict.nowhere:fn"), "function",
         "custom policy 'tests.conflict.nowhere:fn': cannot import module"),
        (EntityConfig(on_delete="delete"), "on_delete", "unknown delete rule 'delete'"),
        (EntityConfig(columns={"price": ColumnConfig("median")}), "columns.price.policy",
         "unknown conflict policy 'median'"),
        (EntityConfig(columns={"price": ColumnConfig("custom", function=f"{SAMPLES}:nope")}),
         "columns.price.function", f"module '{SAMPLES}' has no attribute 'nope'"),
    ],
)
def test_build_reports_the_field_at_fault(spec: EntityConfig, where: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        build_resolver(spec)
    assert info.value.field == where
    assert message in info.value.message
    assert str(info.value).startswith(f"{where}: ")


# --- properties ---------------------------------------------------------------------

ENDPOINTS = st.sampled_from(["crm", "billing", "erp", ""])
TIMES = st.sampled_from([T0, T0 + 1e-7, T0 + 1, T0 + 1.5, 0.0])
VALUES = st.sampled_from(
    [None, 0, 1, True, False, "a", "b", Decimal("1.5"), Decimal("1.50"), 1.5, 2.0, 2]
)
ROWS = st.dictionaries(st.sampled_from(["name", "price", "flag"]), VALUES, max_size=3)
CONTENTS = st.none() | ROWS


@st.composite
def cases(draw: st.DrawFn, contents: st.SearchStrategy[dict[str, Any] | None] = CONTENTS,
          base: bool = False) -> ConflictCase:
    cur = Side(draw(ENDPOINTS), VersionVector({"a": 1}), draw(contents), draw(TIMES))
    inc = Side(draw(ENDPOINTS), VersionVector({"b": 1}), draw(contents), draw(TIMES))
    return case_of(cur, inc, draw(ROWS) if base else None)


def assert_picks_a_side(case: ConflictCase, decision: Decision | None) -> Resolution:
    r = resolved(decision)
    assert r.winner in (Winner.CURRENT, Winner.INCOMING)
    assert r.content is case.side(r.winner).content
    return r


PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(cases())
def test_lww_is_symmetric_and_picks_a_side(case: ConflictCase) -> None:
    policy = LastWriterWins()
    r = assert_picks_a_side(case, policy.decide(case))
    s = assert_picks_a_side(swapped(case), policy.decide(swapped(case)))
    assert rows_equal(r.content, s.content)


@PROPERTY
@given(cases(), st.lists(ENDPOINTS, unique=True, max_size=3))
def test_priority_is_symmetric_and_picks_a_side(case: ConflictCase, order: list[str]) -> None:
    policy = EndpointPriority(order)
    r, s = policy.decide(case), policy.decide(swapped(case))
    assert (r is None) == (s is None)
    if r is not None:
        assert_picks_a_side(case, r)
        assert_picks_a_side(swapped(case), s)
        assert rows_equal(r.content, resolved(s).content)


@PROPERTY
@given(cases(contents=ROWS, base=True))
def test_field_merge_keeps_every_one_sided_edit(case: ConflictCase) -> None:
    policy = FieldMerge()
    r, s = policy.decide(case), policy.decide(swapped(case))
    assert (r is None) == (s is None)
    if r is None:
        return
    merged = resolved(r).content
    assert merged is not None and rows_equal(merged, resolved(s).content)
    assert case.base is not None and case.current.content is not None
    assert case.incoming.content is not None
    for column in set(case.base) | set(case.current.content) | set(case.incoming.content):
        changed = [sd.content for sd in (case.current, case.incoming)
                   if not rows_equal(_only(sd.content, column), _only(case.base, column))]
        expected = changed[0] if changed else case.base
        assert rows_equal(_only(merged, column), _only(expected, column))


def _only(content: Mapping[str, Any] | None, column: str) -> dict[str, Any]:
    assert content is not None
    return {column: content[column]} if column in content else {}


@PROPERTY
@given(cases(), st.sampled_from(["delete_wins", "update_wins", "policy"]))
def test_resolver_chain_is_symmetric(case: ConflictCase, on_delete: str) -> None:
    policies: list[Policy] = [
        Chain(DeleteRule(on_delete), LastWriterWins()),
        PerColumn(LastWriterWins(), {"price": EndpointPriority(["billing", "crm"])}),
    ]
    for policy in policies:
        r = resolved(policy.decide(case))
        s = resolved(policy.decide(swapped(case)))
        assert rows_equal(r.content, s.content)
        if r.content is not None:
            # Every column comes from one side or the other.
            for column, value in r.content.items():
                assert any(
                    sd.content is not None and column in sd.content
                    and rows_equal({column: sd.content[column]}, {column: value})
                    for sd in (case.current, case.incoming)
                )
