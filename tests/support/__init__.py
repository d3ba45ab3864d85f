"""What the tests share: the float64 NumPy oracle, the browser harness, requirements, CLI helpers, the mutation check."""

from pathlib import Path

#: The repository's root (``tests/support/`` is two folders below it).
REPOSITORY = Path(__file__).resolve().parents[2]
