"""Plain torch/PyG modules (no Lightning, no Hydra): embeddings, encoders, readout, heads.

``ENCODER_FAMILIES`` / ``HEAD_FAMILIES`` are the allow-lists a checkpoint header may name: loading builds
only these classes, never code named by the file.
"""

from molgnn.nn.dmpnn import DMPNNEncoder
from molgnn.nn.gine import GINEEncoder
from molgnn.nn.heads import MLPHead

ENCODER_FAMILIES = {GINEEncoder.family: GINEEncoder, DMPNNEncoder.family: DMPNNEncoder}
HEAD_FAMILIES = {MLPHead.family: MLPHead}

__all__ = ["ENCODER_FAMILIES", "HEAD_FAMILIES", "DMPNNEncoder", "GINEEncoder", "MLPHead"]
