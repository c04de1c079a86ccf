"""Uncertainty for decisions: acquisition/selection over predicted mean and spread (select), calibrated
intervals (conformal) and applicability domain (domain)."""
