"""Checks candidates against what a task's demonstrations imply, runs candidate programs safely, and says
what is wrong as problems and as feedback text."""

from verifier.feedback import FeedbackFormatter
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
from verifier.program_problems import program_problems, program_verdict
from verifier.program_report import PairResult, ProgramReport
from verifier.sandbox import (
    SandboxError,
    check_program,
    check_program_file,
    program_report_json,
    run_program,
    score_test_outputs,
)
from verifier.verdict import PROBLEM_KINDS, Problem, Verdict

__all__ = [
    "PROBLEM_KINDS", "ConsistencyPredictions", "FeedbackFormatter", "GridDiff", "GridVerifier", "PairResult",
    "Problem", "ProgramReport", "SandboxError", "ShapeRule", "Verdict", "VerifierConfig", "as_grid", "check_program",
    "check_program_file", "grid_diff", "infer_shape_rules", "predict_consistency", "program_problems",
    "program_report_json", "program_verdict", "run_program", "score_test_outputs",
]
