"""Checks candidates against what a task's demonstrations imply, and runs candidate programs safely."""

from verifier.grid_verifier import (
    ConsistencyPredictions,
    GridDiff,
    GridVerifier,
    ShapeRule,
    VerifierConfig,
    as_grid,
    grid_diff,
    infer_shape_rules,
    predict_consistency,
)
from verifier.sandbox import (
    PairResult,
    ProgramReport,
    SandboxError,
    check_program,
    program_problems,
    program_report_json,
    program_verdict,
    run_program,
    score_test_outputs,
)
from verifier.verdict import Problem, Verdict

__all__ = [
    "ConsistencyPredictions", "GridDiff", "GridVerifier", "PairResult", "Problem", "ProgramReport",
    "SandboxError", "ShapeRule", "Verdict", "VerifierConfig", "as_grid", "check_program", "grid_diff",
    "infer_shape_rules", "predict_consistency", "program_problems", "program_report_json",
    "program_verdict", "run_program", "score_test_outputs",
]
