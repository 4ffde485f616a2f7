"""Scores in the worker: RiskAssessments for NEWS2, Morse and LACE (pure scoring in scores/)."""
