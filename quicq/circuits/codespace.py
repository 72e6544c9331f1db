"""The code space of a circuit that works inside a subspace of its qubits' states.

A Quantum-PEFT Pauli circuit for N = m·2^p with m odd holds an m-level register Gray-coded in
⌈log2 m⌉ qubits: its logical basis state i is the physical basis state ``indices[i]`` and the
circuit never leaves their span. Which physical states are logical changes every result read
from the circuit (the engine's columns, tomography's measured outcomes), so the code space is a
*compared* part of a :class:`~quicq.circuits.ir.Circuit`, kept by every compiler that can carry
it and never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


__all__ = ["CodeSpace"]


def _error(message: str) -> Exception:
    from quicq.circuits.ir import CircuitError  # ir imports this module

    return CircuitError(message)


@dataclass(frozen=True)
class CodeSpace:
    """Logical basis of a circuit: logical index i ↦ physical basis index ``indices[i]``.

    Physical indices are quicq's (qubit 0 = most significant bit). Immutable and hashable.
    """

    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        raw = self.indices
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise _error(f"code space indices must be a sequence of ints, got {type(raw).__name__}")
        vals = tuple(raw)
        if not vals:
            raise _error("a code space needs at least one basis state")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise _error(f"code space index {v!r} is not a non-negative int")
        vals = tuple(int(v) for v in vals)
        if len(set(vals)) != len(vals):
            raise _error("code space indices repeat a basis state")
        object.__setattr__(self, "indices", vals)

    @property
    def dim(self) -> int:
        """Number of logical basis states N."""
        return len(self.indices)

    def check(self, n_qubits: int) -> None:
        """Raise unless every index is a basis state of ``n_qubits`` qubits."""
        top = max(self.indices)
        if top >> n_qubits:
            raise _error(f"code space index {top} is not a basis state of {n_qubits} qubits")

    def to_text(self) -> str:
        """Space-separated indices (the form written into OpenQASM comments)."""
        return " ".join(map(str, self.indices))

    @classmethod
    def from_text(cls, text: str, *, max_dim: int) -> CodeSpace:
        """Parse :meth:`to_text` output; at most ``max_dim`` indices of ≤ 18 digits each."""
        words = text.split()
        if len(words) > max_dim:
            raise _error(f"code space lists {len(words)} states, more than the limit {max_dim}")
        if not all(w.isdigit() and w.isascii() and len(w) <= 18 for w in words):
            raise _error("code space must be non-negative decimal integers separated by spaces")
        return cls(tuple(int(w) for w in words))

    def __repr__(self) -> str:
        shown = self.to_text() if self.dim <= 8 else " ".join(map(str, self.indices[:8])) + " …"
        return f"CodeSpace(N={self.dim}: {shown})"


