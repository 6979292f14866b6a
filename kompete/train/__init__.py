"""Training: the Task contract, the time-budgeted Trainer, checkpoints, and the GAN task for `generate`."""

from kompete.train.context import Context, make_context
from kompete.train.task import TASKS, IndexSampler, Task, build_task, task_class

# importing the task modules registers them in TASKS
from kompete.train import gan  # noqa: F401,E402

__all__ = ["TASKS", "Context", "IndexSampler", "Task", "build_task", "make_context", "task_class"]
