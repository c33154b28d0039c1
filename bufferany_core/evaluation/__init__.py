"""Evaluation: metrics against ground truth and temporal consistency (numpy; torch for flow warping)."""
