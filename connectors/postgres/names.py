"""Names of the objects cdcsync creates in a PostgreSQL database.

Slot names may hold only lower-case letters, digits and underscores (at most 63
bytes); publications and schemas are identifiers. Pipeline and endpoint names
come from a user's config, so they are sanitised here, once, and every other
module takes its names from :class:`Names`.

Replication origins are cluster-wide and one origin can be active in only one
session at a time (PostgreSQL 15). Every sink session of a pipeline therefore
takes an origin from a small pool: ``cdcsync_<pipeline>`` first, then
``cdcsync_<pipeline>.1``, ``.2``, ... The source skips a transaction whose
origin is any member of its pipeline's pool (:meth:`Names.is_own_origin`):
echo suppression by tag, never by content.

Sanitising is not one-to-one: ``Xpo-Dash`` and ``xpo_dash`` derive one slot and one
origin, and so do pipeline ``a_b`` with endpoint ``c`` and pipeline ``a`` with
endpoint ``b_c``. The derived names of a pipeline never change (its slot would be
orphaned); instead setup records, in each database, which pipeline holds which names
(:data:`NAMES_TABLE`, connectors/postgres/setup.py) and refuses a second pipeline
that derives names another already holds there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

MAX_NAME = 63  # NAMEDATALEN - 1
#: The schema of the small bookkeeping table the sink writes (see sink.py).
SIDE_SCHEMA = "cdcsync"
APPLIED_TABLE = "applied_tx"
#: the sink's record of the rows it deleted (connectors/postgres/sink.py)
DELETED_TABLE = "deleted_rows"
#: the pipelines using the schema, by origin: a teardown keeps the schema for them
PIPELINES_TABLE = "pipelines"
#: which pipeline, by its exact name, holds the slot, publication and origin each of its
#: endpoints in this database uses (made by setup; see setup.py ``refuse_shared_names``)
NAMES_TABLE = "pipeline_names"


def sanitize(text: str) -> str:
    """A lower-case ``[a-z0-9_]`` form of ``text`` (never empty)."""
    out = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return out or "x"


def bounded(name: str, limit: int = MAX_NAME) -> str:
    """``name`` cut to ``limit`` characters, with a hash suffix so cut names stay distinct."""
    if len(name) <= limit:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[: limit - 9]}_{digest}"


@dataclass(frozen=True, slots=True)
class Names:
    slot: str
    publication: str
    origin: str  # the first origin of the pool
    #: the pipeline and endpoint names as written in the config (not sanitised)
    pipeline: str = ""
    endpoint: str = ""

    @classmethod
    def of(cls, pipeline: str, endpoint: str, settings: Any = None) -> Names:
        base = bounded(f"cdcsync_{sanitize(pipeline)}_{sanitize(endpoint)}")
        slot = getattr(settings, "slot", None) or base
        publication = getattr(settings, "publication", None) or base
        if sanitize(slot) != slot or len(slot) > MAX_NAME:
            raise ValueError(
                f"slot name {slot!r}: use at most {MAX_NAME} lower-case letters, digits and _"
            )
        # Room for the pool suffix ".NN" within the 63 bytes of an origin name.
        origin = bounded(f"cdcsync_{sanitize(pipeline)}", MAX_NAME - 4)
        return cls(slot=slot, publication=publication, origin=origin, pipeline=pipeline,
                   endpoint=endpoint)

    def pool_origin(self, n: int) -> str:
        """The ``n``-th origin of the sink pool (0 is the plain pipeline origin)."""
        return self.origin if n == 0 else f"{self.origin}.{n}"

    def is_own_origin(self, name: str) -> bool:
        if name == self.origin:
            return True
        head, dot, tail = name.rpartition(".")
        return bool(dot) and head == self.origin and tail.isdigit()


def quote_ident(name: str) -> str:
    """``name`` as a quoted identifier, for option values that PostgreSQL parses as
    identifiers (``publication_names``)."""
    return '"' + name.replace('"', '""') + '"'
