"""molgnn: molecular property prediction with pretrained GNN encoders.

Python API: ``model = molgnn.load("best.ckpt")``; ``model.predict(smiles)`` -> DataFrame;
``model.embed(smiles)`` -> array [N, d]; ``molgnn.train(overrides=[...])`` -> metrics dict.
"""

__version__ = "0.1.0"

from molgnn.api import Model, load, train  # noqa: E402  (light: heavy imports happen inside the functions)

__all__ = ["Model", "load", "train", "__version__"]
