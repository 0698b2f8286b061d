"""Reproduction harness for GridSampler with several workers sharing one study.

The flow, one module a step: scenarios (data) -> runner launches workers on a storage ->
metrics from the finished study -> results (JSON records) -> report (Markdown).
"""
