"""Tests of fmaprep.bench helpers."""
