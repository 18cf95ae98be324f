"""BERT4Rec on sequence data, as a family: SASRec's data, knobs, trainer, evaluation and kernel
warm-up, with the cloze task's `mask_prob` beside them.

Its training config is `ClozeConfig` (SASRec's `TrainConfig` and `mask_prob`), which the
shared trainer (`tuner.sequences.train`) and the memory model (`tuner.memory`) read as
BERT4Rec's; everything else is the SASRec family's own code.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from typing import Any

from cce_tune.tuner.arguments import parse_number
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import sasrec
from cce_tune.tuner.families.base import Knob
from cce_tune.tuner.sequences.config import ClozeConfig, TrainConfig

DEFAULTS = ClozeConfig()
CLOZE_KNOBS = (Knob("mask_prob", "--mask-prob", "mask_prob", float),
               Knob("last_item_prob", "--last-item-prob", "last_item_prob", float))
# Not SASRec's CUDA graphs nor sparse item gradients, not yet (`ClozeConfig`).
KNOBS = (*(k for k in sasrec.KNOBS if k.name not in ("cuda_graphs", "sparse_item_grad")),
         *CLOZE_KNOBS)


def probability(closed: bool):
    """An argparse type for a share: in [0, 1] if `closed`, else in (0, 1)."""
    def parse(text: str) -> float:
        value = parse_number(text, float, "a number")
        if not (0 <= value <= 1 if closed else 0 < value < 1):
            raise argparse.ArgumentTypeError(
                f"{value} must be in {'[0, 1]' if closed else '(0, 1)'}")
        return value
    return parse


def cloze_config(config: TrainConfig, **cloze: float) -> ClozeConfig:
    """SASRec's training config as BERT4Rec's, with the cloze task's `mask_prob` and
    `last_item_prob`."""
    return ClozeConfig(**{f.name: getattr(config, f.name) for f in fields(TrainConfig)},
                       **cloze)


def config_from_params(params: dict[str, Any], base: ClozeConfig) -> ClozeConfig:
    """SASRec's translation of a sampled point, then the cloze task's knobs; raises
    ValueError for a point the model refuses."""
    config = sasrec.config_from_params(params, base)
    return replace(config, **{knob.name: float(params[knob.name]) for knob in CLOZE_KNOBS
                              if knob.name in params})


class BERT4RecTarget(sasrec.SASRecTarget):
    """BERT4Rec on one sequence dataset; the estimate is `tuner.memory.estimate`'s, which
    reads the config as BERT4Rec's."""

    config_class = ClozeConfig
    configure = staticmethod(config_from_params)


class BERT4RecFamily(sasrec.SASRecFamily):
    name = "bert4rec"
    help = "BERT4Rec on user sequences: bidirectional, trained by the cloze task"
    columns = (*sasrec.SASRecFamily.columns, ("mask_prob", "mask"), ("last_item_prob", "last"))
    knobs = KNOBS
    default_space = "bert4rec"
    memory_grid = "bert4rec"
    target_class = BERT4RecTarget

    def add_arguments(self, parser: argparse.ArgumentParser, command: str) -> None:
        super().add_arguments(parser, command)
        group = parser.add_argument_group("cloze task")
        group.add_argument(
            "--mask-prob", type=probability(closed=False), default=DEFAULTS.mask_prob,
            help="share of each training sequence's items masked and predicted, at least one "
                 f"a sequence (default: {DEFAULTS.mask_prob})")
        group.add_argument(
            "--last-item-prob", type=probability(closed=True), default=DEFAULTS.last_item_prob,
            help="share of training sequences that instead have only their last item masked, "
                 f"the next-item task evaluation asks (default: {DEFAULTS.last_item_prob})")

    def train_config(self, args: argparse.Namespace, **run: Any) -> ClozeConfig:
        try:
            return cloze_config(super().train_config(args, **run), mask_prob=args.mask_prob,
                                last_item_prob=args.last_item_prob)
        except ValueError as error:
            raise CceTuneError(str(error)) from None

    def run_estimate(self, args: argparse.Namespace) -> None:
        from cce_tune.models.bert4rec_config import masked_capacity

        config = self.train_config(args)
        if not args.json and not args.solve:
            tokens = config.batch_size * config.max_len
            bound = masked_capacity(config.batch_size, config.max_len, config.mask_prob)
            print(f"cloze task: mask_prob {config.mask_prob}; the loss's tokens are the masked "
                  f"positions, at most {bound:,} a step of B x L = {tokens:,}")
        super().run_estimate(args)


FAMILY = BERT4RecFamily()
