"""One :class:`~sync.change.ChangeBatch` from pgoutput messages, with its checkpoint.

Shared by both readers. A checkpoint is ``{"lsn": L}``: every transaction
whose commit record starts before ``L`` has been read (``L`` is the end of the
last transaction read, or a position the reader knows it has read everything
before). A transaction larger than twice the batch size is split: the
checkpoint is then ``{"lsn": L, "tx": C, "index": n}``, meaning "also the
first ``n`` row messages of the transaction committed at ``C``", and a reader
started from it skips those.
"""

from __future__ import annotations

from typing import Any

from connectors.postgres.decoding import ChangeDecoder, TxEnd
from connectors.postgres.pgoutput import Begin, PgOutputMessage
from sync.change import Change, ChangeBatch, Checkpoint

#: Skip every row message of a transaction.
SKIP_ALL = 1 << 62


class BatchBuilder:
    """Feed messages in log order until :meth:`feed` says the batch is full."""

    def __init__(self, decoder: ChangeDecoder, after: Checkpoint | None, start: int,
                 limit: int) -> None:
        self.decoder = decoder
        self.start = start
        self.limit = max(int(limit), 1)
        self.resume_tx = int(after["tx"]) if after and "tx" in after else None
        self.resume_n = int(after.get("index", 0)) if after else 0
        self.changes: list[Change] = []
        self.events: list[Any] = []
        self.last_end = start
        self.skipping = False
        self.full = False

    def feed(self, msg: PgOutputMessage) -> bool:
        """Take one message; True once the batch is full (feed no more)."""
        decoder = self.decoder
        if isinstance(msg, Begin):
            # Transactions whose commit starts before ``start`` were read already.
            self.skipping = msg.final_lsn < self.start
            decoder.feed(msg)
            if msg.final_lsn == self.resume_tx:
                decoder.skip_below = self.resume_n
            if self.skipping:
                decoder.skip_below = SKIP_ALL
            return False
        for item in decoder.feed(msg):
            if isinstance(item, TxEnd):
                if not self.skipping:
                    self.last_end = max(self.last_end, item.end_lsn)
                self.skipping = False
            elif self.skipping:
                continue
            elif isinstance(item, Change):
                self.changes.append(item)
            else:
                self.events.append(item)
        if decoder.begin is not None:
            if len(self.changes) >= 2 * self.limit and not self.skipping:
                self.full = True
        elif len(self.changes) >= self.limit:
            self.full = True
        return self.full

    @property
    def progressed(self) -> bool:
        return self.last_end > self.start or self._inside() is not None

    def _inside(self) -> dict[str, int] | None:
        """The checkpoint inside the current transaction, if one is being read."""
        begin = self.decoder.begin
        if begin is None or self.skipping:
            return None
        return {"lsn": self.last_end, "tx": begin.final_lsn, "index": self.decoder.n}

    def batch(self, caught_up_to: int | None = None) -> ChangeBatch:
        """The batch so far. ``caught_up_to``: the reader knows it has read every
        transaction that commits before this position (the slot may go there)."""
        inside = self._inside()
        if inside is not None:
            return ChangeBatch(self.changes, inside, more=True, events=self.events)
        if caught_up_to is not None and not self.full:
            lsn = max(caught_up_to, self.last_end, self.start)
            return ChangeBatch(self.changes, {"lsn": lsn}, more=False, events=self.events)
        return ChangeBatch(self.changes, {"lsn": self.last_end}, more=True, events=self.events)


def same_checkpoint(a: Checkpoint | None, b: Checkpoint | None) -> bool:
    """Whether two checkpoints are the same place in the log (extra keys aside)."""
    def core(cp: Checkpoint | None) -> tuple[int, int | None, int]:
        if cp is None:
            return (-1, None, 0)
        return (int(cp["lsn"]), cp.get("tx"), int(cp.get("index", 0)))

    return core(a) == core(b)
