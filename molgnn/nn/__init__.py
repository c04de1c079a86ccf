"""Plain torch/PyG modules (no Lightning, no Hydra): embeddings, encoders, readout, heads.

``ENCODER_FAMILIES`` / ``HEAD_FAMILIES`` are the allow-lists a checkpoint header may name: loading builds
only these classes, never code named by the file.
"""

from molgnn.nn.chemprop import ChempropEncoder, ChempropFFN
from molgnn.nn.dmpnn import DMPNNEncoder
from molgnn.nn.encoder import Encoder
from molgnn.nn.gine import GINEEncoder
from molgnn.nn.heads import MLPHead
from molgnn.nn.hu2020 import Hu2020GAT, Hu2020GCN, Hu2020SAGE
from molgnn.nn.minimol import MinimolEncoder
from molgnn.nn.molclr import MolCLRGCN

ENCODER_FAMILIES = {GINEEncoder.family: GINEEncoder, DMPNNEncoder.family: DMPNNEncoder}
HEAD_FAMILIES = {MLPHead.family: MLPHead, ChempropFFN.family: ChempropFFN}
# published foreign encoders (Hu et al. 2020, MolCLR, MiniMol, Chemprop): same layers and parameter names as their checkpoints
ENCODER_FAMILIES.update(
    {
        cls.family: cls
        for cls in (Hu2020GCN, Hu2020SAGE, Hu2020GAT, MolCLRGCN, MinimolEncoder, ChempropEncoder)
    }
)

__all__ = [
    "ENCODER_FAMILIES",
    "Encoder",
    "HEAD_FAMILIES",
    "ChempropEncoder",
    "ChempropFFN",
    "DMPNNEncoder",
    "GINEEncoder",
    "MLPHead",
    "Hu2020GAT",
    "Hu2020GCN",
    "Hu2020SAGE",
    "MinimolEncoder",
    "MolCLRGCN",
]
