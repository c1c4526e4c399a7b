"""Runs written in other tools' formats (`harness export`)."""
