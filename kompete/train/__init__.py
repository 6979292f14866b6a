"""Training: the time-budgeted Trainer, its callbacks, checkpoints, budgets and device context.

What is trained lives in kompete.algorithms; this package never learns the difference between them.
"""
