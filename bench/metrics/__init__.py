"""Metrics: what the numbers mean.

``detection`` (the official EER, t-DCF, AUC, error rates), ``bootstrap`` (CIs of the EER by utterance or speaker
cluster), ``summary`` (per-condition rows from a scores table), ``costs`` (Cllr, actDCF, minDCF, bootstrap CIs of
error rates), ``quality`` (SNR, PESQ, STOI of a condition's audio), ``competence`` (is a model at chance or
inverted on the clean condition).

May import: numpy, pandas, scipy and the quality measures' packages; nothing else of ``bench`` and nothing of the
plug-in packages, so every other part of the harness (and ``reports/``) can use it. The public names of the contract,
``bench.metrics.eer`` and ``bench.metrics.min_tdcf``, are handed on here with the rest of the detection metrics.
"""
from bench.metrics.bootstrap import bootstrap_eer_ci, bootstrap_eers
from bench.metrics.detection import (
    BONAFIDE, PSPOOF, SPOOF, TDCF_COSTS, accuracy, asv_error_rates, auc, balanced_accuracy, det_curve, eer,
    error_rates, min_tdcf, tdcf_curve,
)
from bench.metrics.summary import SPOOF_ONLY, SUMMARY_COLUMNS, breakdowns, summarize

__all__ = ["BONAFIDE", "PSPOOF", "SPOOF", "SPOOF_ONLY", "SUMMARY_COLUMNS", "TDCF_COSTS", "accuracy",
           "asv_error_rates", "auc", "balanced_accuracy", "bootstrap_eer_ci", "bootstrap_eers", "breakdowns",
           "det_curve", "eer", "error_rates", "min_tdcf", "summarize", "tdcf_curve"]
