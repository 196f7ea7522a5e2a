"""halluc_lib: the library behind The Hallucination Book."""

__version__ = "0.1.0"
