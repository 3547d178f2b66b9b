"""LLM-OS: a desktop operating system whose kernel is a local language model."""

__version__ = "0.1.0"
