"""Checks candidates against what a task's demonstrations imply, and runs candidate programs safely."""

from verifier.verdict import Problem, Verdict

__all__ = ["Problem", "Verdict"]
