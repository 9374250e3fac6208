"""The scope filter typed into the TUI's filter bar, and its `fembed run` equivalent.

Syntax: whitespace-separated terms, all of which must match (AND).

* ``field:value[,value...]`` matches when the field equals one of the values (OR), ignoring
  case. Fields: ``priority`` (``p``), ``tier`` (``t``), ``loss`` (``l``), ``embedding``
  (``emb``, ``e``), ``state`` (``s``; "not queued" is written ``not-queued``), ``id`` (a
  prefix: ``id:FE-0`` matches FE-01 … FE-09).
* a bare word matches when it is a substring of the id, priority, tier, loss or embedding.

Anything that does not parse as a field term is a bare word, so a typo narrows instead of
raising: the filter bar never shows an error while the user is still typing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

# Canonical field name for every alias the filter accepts.
FIELD_ALIASES = {
    "priority": "priority", "p": "priority",
    "tier": "tier", "t": "tier",
    "loss": "loss", "l": "loss",
    "embedding": "embedding", "emb": "embedding", "e": "embedding",
    "state": "state", "s": "state",
    "id": "exp_id", "exp_id": "exp_id",
}
# Fields `fembed run` can filter on directly (its --priority/--tier/--loss/--embedding options).
RUN_FIELDS = ("priority", "tier", "loss", "embedding")
# The words searched by a bare term.
SEARCHED = ("exp_id", "priority", "tier", "loss", "embedding")


@dataclasses.dataclass(frozen=True)
class Scope:
    """A parsed filter: field terms (field -> accepted values, lower case) and bare words."""

    fields: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Scope:
        fields: dict[str, tuple[str, ...]] = {}
        words: list[str] = []
        for term in text.split():
            name, sep, values = term.partition(":")
            field = FIELD_ALIASES.get(name.lower()) if sep else None
            accepted = tuple(v.lower() for v in values.split(",") if v)
            if field is None or not accepted:
                words.append(term.lower())
                continue
            # The same field twice narrows: only values named both times survive.
            fields[field] = (tuple(v for v in fields[field] if v in accepted)
                             if field in fields else accepted)
        return cls(fields, tuple(words))

    @property
    def empty(self) -> bool:
        return not self.fields and not self.words

    def matches(self, item: Mapping[str, object]) -> bool:
        """``item`` has the keys exp_id, priority, tier, loss, embedding, state (any may be None)."""
        for field, accepted in self.fields.items():
            value = _text(item.get(field))
            if field == "state":
                value = value.replace(" ", "-")
            if field == "exp_id":
                if not any(value.startswith(prefix) for prefix in accepted):
                    return False
            elif value not in accepted:
                return False
        haystack = [_text(item.get(key)) for key in SEARCHED]
        return all(any(word in text for text in haystack) for word in self.words)

    def run_filters(self, items: Sequence[Mapping[str, object]] = ()) -> dict[str, tuple[str, ...]] | None:
        """The scope as `fembed run` filters, or None when it needs more than they can say
        (state or id prefixes, a bare word that is no one field's value): then the caller
        lists the experiment ids.

        A bare word becomes ``--<field> word`` when, over ``items`` (every experiment the
        command could reach), it selects exactly what ``field:word`` selects: ``linear``
        finds only embeddings named linear, so it is ``--embedding linear``, not 120 ids.
        """
        if set(self.fields) - set(RUN_FIELDS):
            return None
        fields = dict(self.fields)
        for word in self.words:
            field = _field_of_word(word, items)
            if field is None:
                return None
            values = fields.get(field)
            fields[field] = (word,) if values is None else tuple(v for v in values if v == word)
        return fields


def with_field(text: str, field: str, value: str | None) -> str:
    """The filter ``text`` with its term for ``field`` replaced by ``field:value`` (or dropped
    when ``value`` is None); other terms keep their order."""
    canonical = FIELD_ALIASES[field]
    kept = [term for term in text.split()
            if FIELD_ALIASES.get(term.partition(":")[0].lower()) != canonical
            or not term.partition(":")[1]]
    if value is not None:
        name = "id" if canonical == "exp_id" else canonical
        kept.append(f"{name}:{value.replace(' ', '-')}")
    return " ".join(kept)


def _field_of_word(word: str, items: Sequence[Mapping[str, object]]) -> str | None:
    """The run field whose ``field:word`` term matches the same ``items`` as the bare ``word``."""
    bare = Scope(words=(word,))
    found = [i for i, item in enumerate(items) if bare.matches(item)]
    for field in RUN_FIELDS:
        term = Scope(fields={field: (word,)})
        if found and found == [i for i, item in enumerate(items) if term.matches(item)]:
            return field
    return None


def next_value(text: str, field: str, values: Sequence[str]) -> str | None:
    """The value after the one ``text`` filters ``field`` on, cycling through ``values`` and
    then back to no filter (None)."""
    current = Scope.parse(text).fields.get(FIELD_ALIASES[field], ())
    # The filter writes "not queued" as not-queued (one term): compare in that spelling.
    lowered = [v.lower().replace(" ", "-") for v in values]
    if len(current) != 1 or current[0] not in lowered:
        return values[0] if values else None
    index = lowered.index(current[0]) + 1
    return values[index] if index < len(values) else None


def distinct(items: Iterable[Mapping[str, object]], field: str) -> list[str]:
    """The values of ``field`` in ``items``, in order of first appearance, None dropped."""
    return list(dict.fromkeys(str(item[field]) for item in items if item.get(field) is not None))


def _text(value: object) -> str:
    return "" if value is None else str(value).lower()
