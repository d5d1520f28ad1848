"""Training tasks by name: a recipe's `task:` picks one."""

from .base import Task, Update
from .codec import CodecTask, CodecTaskConfig
from .flow import FlowTask, FlowTaskConfig
from .hubert import HubertTask, HubertTaskConfig
from .speechtokenizer import SpeechTokenizerTask, SpeechTokenizerTaskConfig
from .unit_vocoder import UnitVocoderTask, UnitVocoderTaskConfig

TASKS: dict[str, type[Task]] = {"codec": CodecTask, "hubert": HubertTask, "unit_vocoder": UnitVocoderTask,
                             "flow": FlowTask, "speechtokenizer": SpeechTokenizerTask}

__all__ = ["Task", "Update", "TASKS", "CodecTask", "CodecTaskConfig", "HubertTask", "HubertTaskConfig",
           "UnitVocoderTask", "UnitVocoderTaskConfig", "FlowTask", "FlowTaskConfig",
           "SpeechTokenizerTask", "SpeechTokenizerTaskConfig"]
