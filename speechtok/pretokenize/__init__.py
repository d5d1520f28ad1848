"""Pre-tokenize a corpus into a directory of Parquet shards (DESIGN.md, "File formats"): fast, resumable, sharded.

    speechtok.pretokenize("speechtok-codec-16k", "corpus/", "codes/")            # or: speechtok pretokenize ...
    pandas.read_parquet("codes/")                                               # no speechtok needed to read it

Layout of `out_dir` (every name but the shards starts with `.`: pyarrow, pandas and Hugging Face `datasets`
skip those; `datasets` reads `_`-prefixed files as data, so there are none; polars reads `out_dir/*.parquet`):

    part-<part>-<n>.parquet        rows: id, codes list<list<int16>> [Q][T] (int32 past 32767 codes),
                                   num_frames, duration_s, source_path (+ units, durations with `dedup`;
                                   + segment_scales list<float32> for segmented codecs: the 48 kHz EnCodec;
                                   + input_ids list<int32> with `lm`, input_durations for its units pattern)
    .vocab.json                    with `lm`: the vocabulary of input_ids (`speechtok.lm.LMVocab.load`)
    .meta.json                     tokenizer identity, config and weights hashes, rates, codebooks, device, dtype,
                                   speechtok version, and the layout (parts, shard size, inputs) a rerun must match
    .failures.tsv                  id, path, error of every file that was skipped
    .part-<part>-<n>.failures.tsv  the failures of one shard (`.failures.tsv` is rebuilt from them)
    .part-*.tmp, .lock             shards being written; the lock that serialises `.meta.json` / `.failures.tsv`

Order, and why a rerun resumes: the items (inputs in the order given; a directory sorted, a manifest in its
order; duplicates dropped) are split into `num_parts` disjoint parts, part k taking items k, k + N, k + 2N, ...;
part k's items are cut into shards of `shard_size` consecutive items, numbered from 0. A shard is written to a
temp name and renamed, so it exists whole or not at all, and a rerun redoes exactly the shards that do not exist
(a shard whose items all failed is done when its failures sidecar lists all of them). `.meta.json` pins the
tokenizer (config and weights), `n_q`, `dtype`, `num_parts`, `shard_size` and a hash of the item list, so a rerun
that would change which item goes to which shard is refused instead of writing duplicates or gaps.

Speed: files are read, downmixed and resampled a window at a time (`bucket_size` consecutive items of a shard),
sorted by length and cut into padded batches of at most `batch_seconds` of padded audio, `max_batch_size` items
and 10% padding, with per-item lengths, so that each item gets the codes it gets alone (`Tokenizer.encode(...,
lengths=)`; DESIGN.md, "Invariance"). Files longer than the tokenizer's `chunk_seconds` are encoded in
overlapping chunks by the core, so activations stay bounded; the waveform itself is read whole. Where the windows
are read depends on what runs the model (`read_ahead` overrides it):
- on a GPU, DataLoader worker processes read ahead while it encodes (`num_workers=0`: a thread, one window
  ahead). Before forking the workers the heap's free pages go back to the OS: a process warm from earlier forward
  passes would otherwise share GBs with them copy-on-write, and its next passes would copy every page they reuse
  (2 workers ran 1.5x slower after a warm-up run in the same process);
- on the CPU, reading and the model need the same cores, and a reader that preempts one of torch's threads stalls
  the others at their next barrier: each window is read between forward passes instead, by as many threads as
  torch uses (decoding and resampling release the GIL). On 2 cores this took the time over the pure forward from
  +20% / +26% (2 worker processes / a thread, reading ahead) to +14% (`benchmarks/pretokenize.py`, medians).

Bad files (unreadable, empty, shorter than one frame, NaN, truncated unless `allow_truncated`; with
`skip_missing`, a manifest's missing files) are logged in one line, listed in `.failures.tsv` and skipped; the run
goes on. Errors that are not the file's fault (out of memory, a broken model) stop the run; the rerun resumes.
"""

import sys
import types
from typing import Any

from .batching import BATCH_SECONDS, MAX_PADDING, bucket, default_batch_seconds
from .errors import MissingInputsError, PretokenizeError
from .items import collect_inputs, inputs_hash, item_ids, split_part
from .run import DTYPES, FORMAT, FORMAT_VERSION, META_NAME, VOCAB_NAME, PretokenizeResult, pretokenize
from .shards import FAILURES_NAME, Failure, run_lengths, shard_name

__all__ = ["pretokenize", "PretokenizeResult", "Failure", "PretokenizeError", "MissingInputsError",
           "collect_inputs", "item_ids", "inputs_hash", "split_part", "bucket", "run_lengths", "shard_name",
           "default_batch_seconds", "BATCH_SECONDS", "MAX_PADDING", "DTYPES", "FORMAT", "FORMAT_VERSION",
           "META_NAME", "VOCAB_NAME", "FAILURES_NAME"]


class _CallableModule(types.ModuleType):
    """`speechtok.pretokenize` is this package once it is imported (the import system binds a package's attribute
    to its subpackage), and the function before: calling the package calls the function, so both work."""

    def __call__(self, *args: Any, **kwargs: Any) -> PretokenizeResult:
        return pretokenize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
