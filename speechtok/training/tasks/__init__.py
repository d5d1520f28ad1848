"""Training tasks by name: a recipe's `task:` picks one."""

from .base import Task, Update
from .codec import CodecTask, CodecTaskConfig

TASKS: dict[str, type[Task]] = {"codec": CodecTask}

__all__ = ["Task", "Update", "TASKS", "CodecTask", "CodecTaskConfig"]
