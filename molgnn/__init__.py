"""molgnn: molecular property prediction with pretrained GNN encoders."""

__version__ = "0.1.0"
