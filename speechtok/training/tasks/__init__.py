"""Training tasks by name: a recipe's `task:` picks one. Each task class names itself (`name = ...`) and so
registers in TASKS; every module of this package is imported here."""

import pkgutil
from importlib import import_module

from .base import TASKS, Batch, Task, Update
from .codec import CodecTask, CodecTaskConfig
from .flow import FlowTask, FlowTaskConfig
from .hubert import HubertTask, HubertTaskConfig
from .speechtokenizer import SpeechTokenizerTask, SpeechTokenizerTaskConfig
from .unit_vocoder import UnitVocoderTask, UnitVocoderTaskConfig

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = ["Task", "Batch", "Update", "TASKS", "CodecTask", "CodecTaskConfig", "HubertTask", "HubertTaskConfig",
           "UnitVocoderTask", "UnitVocoderTaskConfig", "FlowTask", "FlowTaskConfig",
           "SpeechTokenizerTask", "SpeechTokenizerTaskConfig"]
