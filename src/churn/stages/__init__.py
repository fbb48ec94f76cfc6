"""The stages of the pipelines as plain functions on paths: one module per ``components/*.py`` module.

Each KFP component is a few lines that map its artifacts to paths and call one function
here, so the same code runs in a KFP pod, in the local KFP runner, in tests and in the benchmarks.
"""
