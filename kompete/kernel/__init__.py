"""Kaggle kernels: build a self-contained bundle, push it, watch it, fetch its output, submit.

`client.py` is the only module that imports the official `kaggle` package.
"""
