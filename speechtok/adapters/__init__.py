"""Adapters: the official checkpoints of other tokenizers behind the speechtok API, so they are scored, timed and
used for pre-tokenization exactly like speechtok's own. Each module is one peer family, registered under the
entry-point group `speechtok.tokenizers`, and imports its package only when a checkpoint is loaded:

    speechtok.load("encodec:/ckpt/encodec_24khz-d7cc33bc.th?q=8")   # encodec package, or a transformers dir
    speechtok.load("dac:/ckpt/weights_16khz.pth")                   # descript-audio-codec
    speechtok.load("mimi:/ckpt/mimi?q=8")                           # transformers MimiModel directory
    speechtok.load("snac:/ckpt/snac_24khz")                         # snac: config.json + pytorch_model.bin
    speechtok.load("speechtokenizer:/ckpt/speechtokenizer_hubert_avg")  # config.json + SpeechTokenizer.pt

Install a peer's package with its extra (`pip install 'speechtok[encodec]'`; see the README for a CPU-only
install). Local paths only: nothing is downloaded.
"""
