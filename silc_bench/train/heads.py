"""The DINO projection head used for SILC's self-distillation (supplementary §7.2).

MLP: Linear → GELU → Linear → GELU → Linear(bottleneck) (two hidden layers of width
`hidden`, then the bottleneck), L2-normalised, then a weight-normalised Linear to K
outputs, no bias, whose per-row weight norm is fixed at 1 (DINO's `norm_last_layer`).

Why the fixed norm: with unit rows and a unit input every output is a cosine in [−1, 1],
so the temperatures (0.04–0.1) decide how peaked the softmax is. If the norm were learned
and became small, the teacher's softmax would go nearly uniform, the cross-entropy would
sit at ln K and the distillation would teach nothing while looking healthy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NormedLinear(torch.nn.Module):
    """Weight-normalised Linear without bias: W = g · v / ‖v‖ (per output row), g ≡ 1 fixed.

    `g` is a buffer of ones rather than a parameter, so no optimizer can move it.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight_v = torch.nn.Parameter(torch.empty(out_dim, in_dim))
        torch.nn.init.trunc_normal_(self.weight_v, std=0.02)
        self.register_buffer("weight_g", torch.ones(out_dim, 1))

    def weight(self) -> torch.Tensor:
        return self.weight_g * F.normalize(self.weight_v, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight())


class DINOHead(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int = 2048, bottleneck: int = 256, out_dim: int = 65536) -> None:
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, bottleneck),
        )
        for m in self.mlp:
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.trunc_normal_(m.weight, std=0.02)
                torch.nn.init.zeros_(m.bias)
        self.last_layer = NormedLinear(bottleneck, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return self.last_layer(x)
