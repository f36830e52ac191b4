"""Formatting of estimates with their uncertainty, figures and the report."""
