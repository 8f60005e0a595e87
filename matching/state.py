"""One numba object holding every array of a :class:`matching.store.Store`.

Unboxing a numpy array argument costs ~40-70 ns hot and ~2 µs with cold caches;
the two hot kernels (single upsert, tree query) would unbox 9-12 of them per call.
They take this StructRef instead (one pointer to unbox), with the query's scratch
buffers among its fields, and are called through their compiled entry point
(:func:`matching.jit.entry_point`).  The proxy is rebuilt whenever
the store replaces an array (growth, compaction), which is rare.
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
