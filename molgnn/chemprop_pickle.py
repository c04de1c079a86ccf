"""Recognising a Chemprop 2.x file and the inert stand-ins it is unpickled with (no Chemprop code runs).

``is_chemprop_file`` scans the pickle's GLOBAL names without running it; ``STAND_INS`` maps every class or
function a Chemprop file may name to an inert ``Stand`` record (``AttributeDict`` to a plain dict), for
``torch.load(weights_only=True)`` in ``molgnn.weights.read_weights``. Reading the records as a model:
``molgnn.chemprop_file``.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

from molgnn.nn.chemprop import ACTIVATIONS


class Stand:
    """Inert stand-in for a class or function a Chemprop file names: ``qualname`` is the name, ``args`` what
    the pickle passed when calling it, and the pickled state lands in ``__dict__``. No other behaviour."""

    qualname = "?"

    def __init__(self, *args):
        self.args = args

    def __repr__(self) -> str:
        return f"<stand-in {self.qualname}>"


_ALLOWED = {
    "chemprop.nn.message_passing.base": ("BondMessagePassing", "AtomMessagePassing"),
    "chemprop.nn.message_passing.multi": ("MulticomponentMessagePassing",),
    "chemprop.nn.agg": ("MeanAggregation", "SumAggregation", "NormAggregation", "AttentiveAggregation"),
    "chemprop.nn.predictors": (
        "RegressionFFN",
        "MveFFN",
        "EvidentialFFN",
        "QuantileFFN",
        "BinaryClassificationFFN",
        "BinaryDirichletFFN",
        "MulticlassClassificationFFN",
        "MulticlassDirichletFFN",
        "SpectralFFN",
    ),
    "chemprop.nn.transforms": ("ScaleTransform", "UnscaleTransform", "GraphTransform"),
    "chemprop.nn.metrics": (
        "MSE",
        "MAE",
        "RMSE",
        "BoundedMSE",
        "BoundedMAE",
        "BoundedRMSE",
        "R2Score",
        "MVELoss",
        "EvidentialLoss",
        "BCELoss",
        "CrossEntropyLoss",
        "BinaryMCCLoss",
        "MulticlassMCCLoss",
        "DirichletLoss",
        "SID",
        "Wasserstein",
        "QuantileLoss",
        "BinaryAUROC",
        "BinaryAUPRC",
        "BinaryAccuracy",
        "BinaryF1Score",
        "BinaryMCCMetric",
        "MulticlassMCCMetric",
    ),
    "chemprop.nn.utils": ("Activation",),
    "torch.nn.modules.activation": ACTIVATIONS,
    "torch.nn.modules.linear": ("Identity",),
    "torchmetrics.metric": ("jit_distributed_available",),
    "torchmetrics.utilities.data": (
        "dim_zero_sum",
        "dim_zero_mean",
        "dim_zero_cat",
        "dim_zero_max",
        "dim_zero_min",
    ),
}
_ATTRIBUTE_DICTS = (
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)
STAND_INS = [
    (type(n, (Stand,), {"qualname": f"{m}.{n}", "__module__": __name__}), f"{m}.{n}")
    for m, names in _ALLOWED.items()
    for n in names
] + [(dict, n) for n in _ATTRIBUTE_DICTS]


def is_chemprop_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a Chemprop model or message-passing file (its pickle is scanned for names,
    not run): a zip-format torch file naming ``chemprop.*`` classes, or holding ``hyper_parameters`` with
    ``d_h`` and no molgnn header (CheMeleon's layout)."""
    try:
        with zipfile.ZipFile(Path(path).expanduser()) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            data = z.read(name) if name else b""
    except (OSError, zipfile.BadZipFile):
        return False
    try:
        names = {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    except Exception:  # a damaged pickle: not ours to recognise; read_weights reports it
        return False
    if any(n.startswith("chemprop.") for n in names):
        return True
    return b"hyper_parameters" in data and b"d_h" in data and b"molgnn" not in data
