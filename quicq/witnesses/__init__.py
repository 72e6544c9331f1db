"""Independent simulators used to cross-check the exact engine."""
