"""YOLACT's export form (`segcli export`, arXiv:1904.02689): the network up to the mask
coefficients and prototypes, with the class scores, box offsets and anchors. The mask assembly
(section 3.3) and Fast NMS (section 5) stay outside the exported graph: `assemble_detections`
runs them on the exported model's outputs with the code the model's own eval mode runs
(segcli.recipes.nets.yolact.detect), so it gives what `model(images)` gives.

    import numpy as np, onnxruntime
    from segcli.recipes.nets.yolact_export import assemble_detections

    session = onnxruntime.InferenceSession("yolact.onnx")
    outputs = session.run(None, {"images": batch})  # float32 [B,3,H,W], RGB in [0,1]
    detections = assemble_detections(outputs, [(H, W)] * B)  # boxes, labels, scores, masks
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from segcli.recipes.nets.yolact import detect

OUTPUT_NAMES = ("class_logits", "box_offsets", "coefficients", "prototypes", "anchors")


class YolactHeads(nn.Module):
    """images [B,3,H,W] RGB in [0,1] (resized to the network's size x size inside) ->
    class_logits [B,A,K+1], box_offsets [B,A,4] (SSD coding), coefficients [B,A,k] (after tanh),
    prototypes [B,k,h,w] (before the sigmoid) and anchors [A,4] (xyxy, relative to the image)."""

    output_names = OUTPUT_NAMES
    # the output axes --dynamic frees (the input's: batch, height, width); anchors are fixed
    dynamic_axes = {name: {0: "batch"} for name in OUTPUT_NAMES[:4]}
    note = (
        "YOLACT is exported up to its mask coefficients and prototypes; mask assembly and Fast "
        "NMS run outside it: segcli.recipes.nets.yolact_export.assemble_detections(outputs, sizes)"
    )

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        size = model.transform.size
        with torch.no_grad():  # the anchors of the network's fixed size x size input
            grids = [f.shape[-2:] for f in model.backbone(torch.zeros(1, 3, size, size)).values()]
        self.register_buffer("anchors", model._anchors(grids, torch.device("cpu")))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.model.transform(images)
        features = list(self.model.backbone(x).values())
        cls, box, coef = self.model.head(features)
        return cls, box, coef, self.model.protonet(features[0]), self.anchors

    def detections(self, outputs: Sequence, image_sizes: Sequence[tuple[int, int]]) -> list[dict]:
        return assemble_detections(outputs, image_sizes, self.model.nms)


def assemble_detections(
    outputs: Sequence, image_sizes: Sequence[tuple[int, int]], nms: str = "fast"
) -> list[dict]:
    """An exported YOLACT's outputs (in OUTPUT_NAMES order; NumPy arrays or tensors) and each
    image's (H, W) -> per image dict(boxes [N,4] xyxy px, labels [N] in 1..K, scores [N],
    masks [N,1,H,W] probabilities), as the PyTorch model returns them."""
    cls, box, coef, prototypes, anchors = (
        torch.from_numpy(np.asarray(o)) if not isinstance(o, torch.Tensor) else o for o in outputs
    )
    with torch.no_grad():
        return [
            detect(cls[i], box[i], coef[i], prototypes[i], anchors, tuple(size), nms)
            for i, size in enumerate(image_sizes)
        ]
