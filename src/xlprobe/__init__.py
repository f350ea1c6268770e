"""xlprobe: how cross-lingual alignment emerges in a language model during pre-training."""

__version__ = "0.1.0"
