"""The model zoo: names that resolve to official weights, fetched once, cached and verified.

    speechtok.load("mimi")                  # kyutai/mimi from the Hugging Face hub, through the mimi adapter
    speechtok.load("dac-16khz")             # Descript's release file from GitHub, sha256-checked when known
    speechtok fetch mimi snac-24khz         # ahead of time, for nodes that are offline

Hub sources go through `huggingface_hub.hf_hub_download` (its cache, `HF_HOME`, `HF_ENDPOINT`, tokens and
`HF_HUB_OFFLINE`); URL sources through `download_verified` into `$SPEECHTOK_CACHE` (default
`~/.cache/speechtok`). The fetched path is handed to the entry's adapter (`adapters/<name>.py`), which reads it with
the safe readers: nothing pickled is ever loaded implicitly.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..fileio import atomic_path


@dataclass(frozen=True)
class Companion:
    """A second hub repository an entry needs (DualCodec's w2v-BERT 2.0), handed to the adapter as an option."""

    option: str  # the adapter option that takes its folder (`w2v` -> `dualcodec:DIR?w2v=FOLDER`)
    repo: str
    files: tuple[str, ...]
    revision: str = "main"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    adapter: str  # the plugin that loads the fetched path
    about: str
    licence: str
    sample_rate: int
    frame_rate: float
    codebooks: str  # "Q x K" as published
    kbps: str
    repo: str | None = None  # a Hugging Face hub repository ...
    revision: str = "main"
    files: tuple[str, ...] = ()  # ... and the files the adapter needs, in one folder of the repository (loaded)
    url: str | None = None  # or one file at a URL
    sha256: str | None = None  # the URL file's hash, where the publisher gives one (or we recorded it)
    options: str = ""  # the adapter's default options, as in `NAME:PATH?options`
    companions: tuple[Companion, ...] = ()


W2V_BERT = Companion("w2v", "facebook/w2v-bert-2.0", ("config.json", "model.safetensors"))

ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry("mimi", "mimi", "Kyutai's Mimi (Moshi's codec), semantic-distilled first codebook", "CC-BY-4.0",
             24000, 12.5, "32 x 2048 (8 used by Moshi)", "1.1 at q=8", repo="kyutai/mimi",
             files=("config.json", "model.safetensors"), options="q=8"),
    ZooEntry("encodec-24khz", "encodec", "Meta's EnCodec 24 kHz (transformers layout)", "CC-BY-NC-4.0",
             24000, 75.0, "32 x 1024", "1.5-24", repo="facebook/encodec_24khz",
             files=("config.json", "model.safetensors")),
    ZooEntry("encodec-48khz", "encodec", "Meta's EnCodec 48 kHz stereo (transformers layout)", "CC-BY-NC-4.0",
             48000, 150.0, "16 x 1024 per 1 s segment", "3-24", repo="facebook/encodec_48khz",
             files=("config.json", "model.safetensors")),
    ZooEntry("snac-24khz", "snac", "SNAC 24 kHz: three codebooks at 12, 23 and 47 Hz", "MIT", 24000, 47.0,
             "3 x 4096", "0.98", repo="hubertsiuzdak/snac_24khz", files=("config.json", "pytorch_model.bin")),
    ZooEntry("snac-32khz", "snac", "SNAC 32 kHz (music and sound effects): four codebooks, 10 to 83 Hz", "MIT",
             32000, 83.3, "4 x 4096", "1.9", repo="hubertsiuzdak/snac_32khz",
             files=("config.json", "pytorch_model.bin")),
    ZooEntry("snac-44khz", "snac", "SNAC 44 kHz (music and sound effects): four codebooks, 14 to 115 Hz", "MIT",
             44100, 114.8, "4 x 4096", "2.6", repo="hubertsiuzdak/snac_44khz",
             files=("config.json", "pytorch_model.bin")),
    ZooEntry("speechtokenizer", "speechtokenizer", "SpeechTokenizer (HuBERT-average teacher): RVQ-1 semantic",
             "Apache-2.0", 16000, 50.0, "8 x 1024", "4", repo="fnlp/SpeechTokenizer",
             files=("speechtokenizer_hubert_avg/config.json", "speechtokenizer_hubert_avg/SpeechTokenizer.pt")),
    ZooEntry("s3tokenizer-v2", "s3tokenizer", "CosyVoice 2's S3Tokenizer: supervised semantic tokens, encode-only",
             "Apache-2.0", 16000, 25.0, "1 x 6561", "0.32",
             url="https://www.modelscope.cn/models/iic/CosyVoice2-0.5B/resolve/master/speech_tokenizer_v2.onnx",
             sha256="d43342aa12163a80bf07bffb94c9de2e120a8df2f9917cd2f642e7f4219c6f71"),
    ZooEntry("s3tokenizer-v3", "s3tokenizer", "Fun-CosyVoice 3's S3Tokenizer: supervised semantic tokens, "
             "encode-only", "Apache-2.0", 16000, 25.0, "1 x 6561", "0.32",
             url="https://www.modelscope.cn/models/FunAudioLLM/Fun-CosyVoice3-0.5B-2512/resolve/master/"
                 "speech_tokenizer_v3.onnx",
             sha256="23236a74175dbdda47afc66dbadd5bcb41303c467a57c261cb8539ad9db9208d"),
    ZooEntry("xcodec2", "xcodec2", "X-Codec2 (Llasa's tokenizer): w2v-BERT 2.0 semantic + acoustic, one FSQ codebook",
             "CC-BY-NC-4.0", 16000, 50.0, "1 x 65536", "0.8", repo="hf-audio/xcodec2",
             files=("config.json", "model.safetensors")),
    ZooEntry("neucodec", "neucodec", "NeuCodec (NeuTTS's codec): X-Codec2's encoder, a 24 kHz decoder", "Apache-2.0",
             16000, 50.0, "1 x 65536", "0.8", repo="neuphonic/neucodec", files=("pytorch_model.bin",)),
    ZooEntry("bigcodec", "bigcodec", "BigCodec: one 8192-code VQ at 80 Hz, LSTM conv codec (X-Codec2's predecessor)",
             "MIT", 16000, 80.0, "1 x 8192", "1.04", repo="Alethia/BigCodec", files=("bigcodec.pt",)),
    ZooEntry("qwen-tts-12hz", "qwen-tts", "Qwen3-TTS's tokenizer: a Mimi encoder, 16 of its codebooks, its own "
             "sliding-window decoder", "Apache-2.0", 24000, 12.5, "16 x 2048", "2.2",
             repo="Qwen/Qwen3-TTS-Tokenizer-12Hz", files=("config.json", "model.safetensors")),
    ZooEntry("dualcodec-12hz", "dualcodec", "DualCodec: a w2v-BERT 2.0 semantic codebook, then DAC acoustic ones "
             "(12.5 Hz)", "unstated (code MIT; trained on Emilia, CC-BY-NC-4.0)", 24000, 12.5,
             "1 x 16384 + 7 x 4096", "1.2", repo="amphion/dualcodec",
             files=("dualcodec_12hz_16384_4096.safetensors", "w2vbert2_mean_var_stats_emilia.pt"),
             options="model=12hz_v1", companions=(W2V_BERT,)),
    ZooEntry("dualcodec-25hz", "dualcodec", "DualCodec: a w2v-BERT 2.0 semantic codebook, then DAC acoustic ones "
             "(25 Hz)", "unstated (code MIT; trained on Emilia, CC-BY-NC-4.0)", 24000, 25.0,
             "1 x 16384 + 11 x 1024", "3.1", repo="amphion/dualcodec",
             files=("dualcodec_25hz_16384_1024.safetensors", "w2vbert2_mean_var_stats_emilia.pt"),
             options="model=25hz_v1", companions=(W2V_BERT,)),
    ZooEntry("stable-codec", "stable-codec", "Stable Codec: a transformer autoencoder (TAAE), post-hoc residual FSQ "
             "(2 x 15625 at 25 Hz)", "Stability AI Community License (gated)", 16000, 25.0, "2 x 15625", "0.7",
             repo="stabilityai/stable-codec-speech-16k", files=("model_config.json", "model.ckpt"),
             options="posthoc=2x15625_700bps"),
    ZooEntry("stable-codec-400bps", "stable-codec", "Stable Codec with its one-codebook post-hoc FSQ (46656 codes "
             "at 25 Hz)", "Stability AI Community License (gated)", 16000, 25.0, "1 x 46656", "0.39",
             repo="stabilityai/stable-codec-speech-16k", files=("model_config.json", "model.ckpt"),
             options="posthoc=1x46656_400bps"),
    ZooEntry("dac-16khz", "dac", "Descript Audio Codec 16 kHz", "MIT", 16000, 50.0, "12 x 1024", "6",
             url="https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.5/weights_16khz.pth"),
    ZooEntry("dac-24khz", "dac", "Descript Audio Codec 24 kHz", "MIT", 24000, 75.0, "32 x 1024", "24",
             url="https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.4/weights_24khz.pth"),
    ZooEntry("dac-44khz", "dac", "Descript Audio Codec 44.1 kHz", "MIT", 44100, 86.1, "9 x 1024", "7.8",
             url="https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth"),
    ZooEntry("dac-44khz-16kbps", "dac", "Descript Audio Codec 44.1 kHz at 16 kbps", "MIT", 44100, 86.1, "18 x 1024",
             "16", url="https://github.com/descriptinc/descript-audio-codec/releases/download/1.0.0/"
                       "weights_44khz_16kbps.pth"),
)}


def cache_root() -> Path:
    return Path(os.environ.get("SPEECHTOK_CACHE") or Path.home() / ".cache" / "speechtok").expanduser()


def resolve(name: str) -> str | None:
    """`mimi` or `mimi?q=4` -> the adapter spec of its fetched files (`mimi:/cache/...?q=4`); None if not a zoo
    name. Fetches what is not cached yet."""
    base, _, query = name.partition("?")
    entry = ZOO.get(base)
    if entry is None:
        return None
    path, folders = _fetch_all(entry)
    options = "&".join(o for o in (query or entry.options, *(f"{k}={v}" for k, v in folders.items())) if o)
    return f"{entry.adapter}:{path}" + (f"?{options}" if options else "")


def fetch(entry: ZooEntry) -> Path:
    """The local path of an entry's files (a folder, or the one file), downloaded and verified if need be; its
    companion repositories' files too."""
    return _fetch_all(entry)[0]


def _fetch_all(entry: ZooEntry) -> tuple[Path, dict[str, Path]]:
    """The entry's path, and each companion's folder by the adapter option that takes it."""
    folders = {c.option: _hub_files(entry, c.repo, c.files, c.revision) for c in entry.companions}
    if entry.url is not None:
        path = download_verified(entry.url, cache_root() / "zoo" / entry.name / Path(entry.url).name, entry.sha256,
                                 entry.name)
    else:
        path = _hub_files(entry, entry.repo, entry.files, entry.revision)
    return path, folders


def is_cached(entry: ZooEntry) -> bool:
    hub = [(c.repo, c.files, c.revision) for c in entry.companions]
    if entry.url is not None:
        if not (cache_root() / "zoo" / entry.name / Path(entry.url).name).is_file():
            return False
    elif entry.repo is not None:
        hub.append((entry.repo, entry.files, entry.revision))
    if not hub:
        return True
    from huggingface_hub import try_to_load_from_cache

    return all(isinstance(try_to_load_from_cache(repo, f, revision=rev), str)
               for repo, files, rev in hub for f in files)


def _hub_files(entry: ZooEntry, repo: str | None, files: tuple[str, ...], revision: str) -> Path:
    """Each file from the Hugging Face cache when it is there (no request at all), else downloaded into it."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    if repo is None:
        raise CheckpointError(f"{entry.name}: neither a hub repository nor a URL")
    paths = []
    offline = _offline()
    for name in files:
        cached = try_to_load_from_cache(repo, name, revision=revision)
        if isinstance(cached, str):
            paths.append(Path(cached))
            continue
        try:
            paths.append(Path(hf_hub_download(repo, name, revision=revision, local_files_only=offline,
                                              endpoint=os.environ.get("HF_ENDPOINT") or None)))
        except LocalEntryNotFoundError:
            raise CheckpointError(
                f"{entry.name}: {repo}/{name} is not in the Hugging Face cache and the hub cannot be reached "
                f"(offline, or HF_HUB_OFFLINE=1); run `speechtok fetch {entry.name}` where there is a network (same "
                f"HF_HOME), or load a local copy: {entry.adapter}:/path/to/it") from None
        except GatedRepoError:
            raise CheckpointError(f"{entry.name}: {repo} is gated: accept its licence on the hub's page of it, then "
                                  "log in (`hf auth login`, or HF_TOKEN) and fetch again") from None
        except OSError as e:  # HTTP errors (a missing file, a gated repository) are OSErrors in huggingface_hub
            raise CheckpointError(f"{entry.name}: cannot fetch {repo}/{name} ({' '.join(str(e).split())[:200]})"
                                  ) from None
    return paths[0].parent  # the files' folder in the revision's snapshot


def download_verified(url: str, target: Path, sha256: str | None, what: str) -> Path:
    """`url` -> `target` once: streamed to a temp file beside it, checked against `sha256` (when given), then
    renamed; an interrupted or mismatching download leaves no file that later passes for complete."""
    if target.is_file():
        return target
    if _offline():
        raise CheckpointError(f"{what}: {target} is not cached and downloads are off (offline); run `speechtok "
                              f"fetch {what}` where there is a network, or copy the file from {url} there")
    digest = hashlib.sha256()
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            expected = response.headers.get("Content-Length")
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
            if expected is not None and f.tell() != int(expected):
                raise CheckpointError(f"{what}: {url} ended after {f.tell()} of {expected} bytes; nothing was kept")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise CheckpointError(f"{what}: {url} has sha256 {digest.hexdigest()}, not the published {sha256}; "
                                      "nothing was kept")
    except (OSError, http.client.HTTPException) as e:  # a refused or cut connection
        raise CheckpointError(f"{what}: cannot download {url} ({' '.join(str(e).split())[:200] or type(e).__name__})"
                              "; nothing was kept") from None
    return target


def _offline() -> bool:
    """HF_HUB_OFFLINE (read at each call, not at import as huggingface_hub does) or SPEECHTOK_OFFLINE."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "SPEECHTOK_OFFLINE"))
