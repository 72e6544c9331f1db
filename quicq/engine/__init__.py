"""Exact torch engine: blocks of quicq circuits, batched and differentiable.

* :func:`unary_block` — n×n block of an RBS/FBS circuit (product of Givens rotations).
* :func:`sector_block`, :func:`sector_blocks` — weight-k blocks (compounds, or exact sector
  simulation for non-adjacent RBS).
* :func:`compound` — k-th compound matrix.
* :func:`pauli_columns` — first K columns of a Pauli circuit's orthogonal matrix, any N.
* :func:`simulate`, :func:`statevector_block` — generic real statevector simulation.
"""

from quicq.engine._plan import Angles
from quicq.engine.compound import compound
from quicq.engine.pauli import pauli_columns
from quicq.engine.sector import sector_block, sector_blocks
from quicq.engine.statevector import simulate, statevector_block
from quicq.engine.unary import unary_block

__all__ = ["Angles", "compound", "pauli_columns", "sector_block", "sector_blocks", "simulate",
           "statevector_block", "unary_block"]
