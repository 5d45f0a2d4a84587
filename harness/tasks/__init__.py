"""Tasks: prompts (and references where they exist) for one behaviour to learn."""

from harness.tasks.base import Example, Task

__all__ = ["Example", "Task"]
