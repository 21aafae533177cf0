"""A candidate program for ARC-AGI-1 training task 3c9b0459: the output is the input turned 180
degrees. Run it in the sandbox against the task's demonstrations and test input:

    hybrid-arc sandbox run --program examples/rotate_180.py --data arc-agi-1:training --task 3c9b0459
"""


def transform(grid):
    return [row[::-1] for row in grid[::-1]]
