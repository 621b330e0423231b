"""mmscel: a competition stack for multimodal single-cell prediction."""
__version__ = "0.1.0"
