"""SASRec's bytes on the GPU as a function of its config, batch and precision.

Counts follow `models.sasrec` line by line: what autograd saves for the backward (the
activations), and the largest temporaries alive beside them. Under autocast the linear layers
and attention run in bfloat16 while layer norms and residual sums stay float32, which is why
the two precisions differ by more than a factor of two.
"""

from __future__ import annotations

from dataclasses import dataclass

from cce_tune.kernels.memory import allocation
from cce_tune.models.sasrec_config import SASRecConfig, bias_columns


def parameter_shapes(config: SASRecConfig) -> list[int]:
    """Element counts of every parameter tensor, in the module's order."""
    d = config.hidden
    block = [d, d, 3 * d * d, 3 * d, d * d, d, d, d, d * d, d, d * d, d]
    return [(config.num_items + 1) * d, config.max_len * d, *block * config.num_blocks, d, d]


def parameter_bytes(config: SASRecConfig) -> int:
    """Float32 parameters (autocast keeps float32 weights)."""
    return sum(allocation(n, 4) for n in parameter_shapes(config))


@dataclass(frozen=True)
class ActivationMemory:
    """Bytes of one training step's forward and backward through the model, batch (B, L).

    `saved`: what autograd keeps from the forward for the backward, the returned hidden states
    included. `forward_extra`: temporaries alive beside the growing `saved` at the worst
    moment of the forward. `backward_extra`: gradients and temporaries alive beside what is
    still saved at the worst moment of the backward through the blocks.
    """

    saved: int
    forward_extra: int
    backward_extra: int


def _attention_logsumexp(batch: int, length: int, heads: int) -> int:
    """The memory-efficient kernel keeps a float32 logsumexp per row, rows padded to 32."""
    return allocation(batch * heads * (-(-length // 32) * 32), 4)


def activation_memory(config: SASRecConfig, batch: int, autocast: bool) -> ActivationMemory:
    """A padded batch (B, L): every block's attention reads the additive (B, 1, L, L) bias,
    built once, and keeps a logsumexp per row."""
    length, low = config.max_len, 2 if autocast else 4
    bias = allocation(batch * length * bias_columns(length), low)
    return _activations(config, batch * length, autocast, bias,
                        _attention_logsumexp(batch, length, config.num_heads))


def packed_activation_memory(config: SASRecConfig, tokens: int,
                             autocast: bool) -> ActivationMemory:
    """`tokens` packed tokens (`models.packing`) on the variable-length kernel: no bias, a
    float32 logsumexp per token and head."""
    return _activations(config, tokens, autocast, 0,
                        allocation(config.num_heads * tokens, 4))


def _activations(config: SASRecConfig, tokens: int, autocast: bool, bias: int,
                 logsumexp: int) -> ActivationMemory:
    d = config.hidden
    e4 = allocation(tokens * d, 4)  # a float32 (tokens, d) tensor
    low = 2 if autocast else 4  # linear layers' and attention's element size
    el = allocation(tokens * d, low)
    mask = allocation(tokens * d, 1)  # a dropout mask
    stats = 2 * allocation(tokens, 4)  # a layer norm's mean and rstd

    # Embedding: the dropout mask, the masked embeddings (the first norm's input), the padding
    # flags kept by the product, the attention bias (if any) shared by all blocks.
    embedding = mask + e4 + allocation(tokens, 1) + bias
    # A block keeps: the norm's stats; the qkv input (bf16 copy under autocast, else the norm
    # output itself); q, k, v; attention output and logsumexp; the attention residual's
    # dropout mask; the residual sum (next norm's input); the FFN input, pre-GELU, and the
    # post-dropout activation; two dropout masks; the block output.
    per_block = (2 * stats + el + 3 * el + el + logsumexp
                 + mask + e4 + el + el + mask + el + mask + e4)
    final = stats + e4  # the final norm's stats and the hidden states it returns
    saved = embedding + config.num_blocks * per_block + final

    # Forward: the bias's three boolean (B, L, L) temporaries come before anything is saved;
    # inside a block the temporaries (a linear output before its dropout, a dropout output
    # before its residual sum) are never more than the tensors still to come (that sum and
    # the final norm's output), so the forward peaks once `saved` is complete (traced on an
    # H200: `benchmarks.step_memory`).
    forward_extra = 0
    # Backward through a block: the gradient of the residual stream plus gradients of the
    # block's inner activations not yet freed (bf16 under autocast, cast back at the residual
    # sums), while the final norm's output, which only the loss needed, is already freed
    # (traced on an H200: `benchmarks.step_memory`). In float32 the attention's backward
    # holds a workspace beside them: 3/4 of a (B, L, d) float32 tensor covers all 115 points
    # of the H200 grid (the largest need, 0.72 of one, at d = 128).
    backward_extra = el if autocast else 2 * el + 3 * e4 // 4
    return ActivationMemory(saved, forward_extra, backward_extra)


def inference_extra(config: SASRecConfig, batch: int, autocast: bool) -> int:
    """Peak temporaries of a no-grad forward over (batch, L): one block's tensors at a time."""
    b, length, d = batch, config.max_len, config.hidden
    tokens = b * length
    e4 = allocation(tokens * d, 4)
    low = 2 if autocast else 4
    el = allocation(tokens * d, low)
    bias = allocation(b * length * bias_columns(length), low)
    building = 3 * allocation(b * length * length, 1)
    # At the attention's output projection (traced on an H200): the residual stream and the
    # norm output (float32), q, k, v and the attention output, and the projection's output;
    # under autocast the attention holds a float32 (B, L, d) beside it instead.
    return bias + max(building, 2 * e4 + 4 * el + (e4 if autocast else el))
