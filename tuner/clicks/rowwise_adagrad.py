"""Row-wise Adagrad for embedding tables with sparse gradients (as in DLRM's reference code
and FBGEMM): one accumulator per row, the mean of its squared gradient, so a table's state is
rows floats instead of rows x d."""

from __future__ import annotations

import torch


class RowWiseAdagrad(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.01, eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ValueError("RowWiseAdagrad takes sparse gradients (EmbeddingBag with "
                                     "sparse=True)")
                grad = param.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self.state[param]
                if "sum" not in state:
                    state["sum"] = torch.zeros(param.shape[0], device=param.device)
                state["sum"].index_add_(0, rows, values.pow(2).mean(1))
                scale = state["sum"][rows].sqrt_().add_(group["eps"])
                param.index_add_(0, rows, values / scale[:, None], alpha=-group["lr"])
