"""One numba object holding every array of a :class:`matching.store.Store`.

Unboxing a numpy array argument costs ~40-70 ns hot and ~2 µs with cold caches; the
general query kernel (:func:`matching.kernels_query.k_query_tree`) would unbox a dozen.
It takes this StructRef instead (one object to unbox), through its compiled entry
point (:func:`matching.jit.entry_point`).  The two hottest kernels (single upsert,
common query) go further and take the address of the store's descriptor, a plain int
(a StructRef still costs ~15 µs with cold caches).  The proxy is rebuilt whenever the
store replaces an array (growth, compaction), which is rare.
"""

from __future__ import annotations

from typing import Any, Final

from numba.core import types as _types
from numba.experimental import structref as _structref

# numba is untyped: go through Any-typed aliases
types: Any = _types
structref: Any = _structref

FIELDS: Final = (
    "m_f", "m_id", "m_i", "m_b", "htab", "p_hot", "p_f", "p_i", "bt", "bb", "meta", "fmeta",
    # the single query's own buffers (see matching.kernels_query.k_query_fast)
    "q_f", "q_i", "q_w", "hk", "hv", "q_excl",
)  # fmt: skip


@structref.register
class StateType(types.StructRef):  # type: ignore[misc]  # subclass of an untyped class
    def preprocess_fields(self, fields: Any) -> tuple[tuple[str, Any], ...]:
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class State(structref.StructRefProxy):  # type: ignore[misc]  # subclass of an untyped class
    """Build with ``State(*arrays)`` in :data:`FIELDS` order; read fields only in kernels."""


structref.define_proxy(State, StateType, list(FIELDS))
