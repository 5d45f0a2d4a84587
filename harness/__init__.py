"""prefharness: learning language-model behaviour from human preferences."""

__version__ = "0.1.0"
