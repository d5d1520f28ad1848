"""Evaluation: metrics as pure functions on arrays and tensors (PESQ, STOI/ESTOI, SI-SDR, mel distance, F0 RMSE
and VDE, bitrate and codebook usage, ABX, WER/CER), the pretrained judges (Whisper ASR for WER/CER/dWER, SIM-GE2E,
DNSMOS: extras `asr`, `judges`), speed, the evaluation runner behind `speechtok eval`, and the
leaderboard behind `speechtok leaderboard`. Nothing here is imported by loading a tokenizer; the metric packages
(`pip install 'speechtok[eval]'`) and matplotlib (`'speechtok[leaderboard]'`) are imported when first used.
"""

from .abx import AbxItem, AbxScore, abx, items_from_alignments, make_triplets, read_item_file, write_item_file
from .bitrate import CodebookStats, code_counts, codebook_stats, effective_bitrate, nominal_bitrate
from .evaluate import EvalConfig, evaluate
from .features import FrameFeatures, codes_to_features, latent_features, mfcc_features
from .leaderboard import build_leaderboard
from .mel_distance import mel_distance
from .metrics import ENTRY_POINT_GROUP, available_metrics
from .pesq import pesq, pesq_protocol
from .prosody import Prosody, prosody
from .results import check_results, load_results, write_results
from .sets import EVAL_SETS, eval_set, utterances
from .sisdr import si_sdr
from .speed import Speed, measure_speed
from .stats import mean_ci
from .stoi import stoi, stoi_protocol
from .text import char_error_rate, normalize_english, word_error_rate

__all__ = [
    "pesq", "pesq_protocol", "stoi", "stoi_protocol", "si_sdr", "mel_distance", "prosody", "Prosody",
    "nominal_bitrate", "effective_bitrate", "code_counts", "codebook_stats", "CodebookStats", "measure_speed", "Speed",
    "mean_ci", "abx", "AbxItem", "AbxScore", "items_from_alignments", "make_triplets", "read_item_file",
    "write_item_file", "FrameFeatures", "codes_to_features", "latent_features", "mfcc_features", "EVAL_SETS",
    "eval_set", "utterances", "EvalConfig", "evaluate", "check_results", "load_results", "write_results",
    "build_leaderboard", "available_metrics", "ENTRY_POINT_GROUP", "normalize_english", "word_error_rate",
    "char_error_rate",
]
