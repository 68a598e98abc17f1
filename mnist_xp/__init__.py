"""mnist-xp: a handwritten-digit recognizer written once against an array namespace."""

__version__ = "0.1.0"
