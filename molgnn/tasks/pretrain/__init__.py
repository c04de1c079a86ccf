"""Self-supervised pretraining: batch corruptions (augment), objectives with pretext heads, PretrainTask."""

from molgnn.tasks.pretrain.objectives import (
    Agreement,
    AttributeMasking,
    Contrastive,
    DescriptorPrediction,
    PretrainContext,
    TeacherDistillation,
    node_width,
)
from molgnn.tasks.pretrain.task import PretrainTask

__all__ = [
    "Agreement",
    "AttributeMasking",
    "Contrastive",
    "DescriptorPrediction",
    "PretrainContext",
    "PretrainTask",
    "TeacherDistillation",
    "node_width",
]
