"""The data-quality gate: Great Expectations suites validate changes before they are applied.

An entity whose config names a suite (``quality: {suite: customers.json}``)
has every batch of changes validated *before* the version-vector protocol
sees it, in every direction, and every snapshot chunk before it is staged.
Changes whose ``after`` row fails a critical expectation are **quarantined**:
written to the ``quarantine`` table, in the same state-store transaction as
the rest of their batch, and never fed to the protocol, so no version vector
records them as applied anywhere. The rest of the batch goes on.

Ordering rule
-------------
No newer edit of a key may overtake a quarantined one. While a key has an
unresolved item (status ``quarantined`` or ``held``), every later change of
that key, from *any* endpoint, whether it passes the suite or not, is
**held** with it: stored with status ``held``, not applied, in arrival order.
A steward's decision on the quarantined item (``cdcsync quarantine
replay|discard``) releases what was held behind it, in order, through the
gate again: the first held change that still fails becomes the key's new
quarantined item and the ones after it stay held.

Statuses: ``quarantined`` (waits for a steward), ``held`` (waits behind a
quarantined change of its key), ``replayed`` (went through the protocol after
a fix at the source, or was superseded by the row read back at replay),
``accepted`` (applied as it was, with the steward's reason), ``discarded``
(dropped with the steward's reason; the endpoint keeps its row).

Laziness: nothing here imports Great Expectations or pandas at module level;
:mod:`sync.quality.gate` and :mod:`sync.quality.suite` import them only when a
suite is loaded, and the engine calls into this package only for entities
that have a suite.
"""
