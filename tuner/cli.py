"""The `cce-tune` command line: one subcommand per job.

`train`, `tune` and `estimate` take `--model` (a registered family, default sasrec); each
family adds its own arguments, so `cce-tune train --model dlrm --help` lists DLRM's flags
only. The model is read from the command line before the parser is built for it.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence

from cce_tune.tuner.allocator import use_expandable_segments
from cce_tune.tuner.arguments import add_data_arguments, data_options
from cce_tune.tuner.cli_memory import add_estimate_arguments, add_verify_parser, run_verify
from cce_tune.tuner.cli_replay import add_replay_parser, run_replay
from cce_tune.tuner.cli_tune import add_report_parser, add_tune_parser, run_report, run_tune
from cce_tune.tuner.errors import CceTuneError
from cce_tune.tuner.families import DEFAULT, Family, get, names

ALIASES = {"train-dlrm": ["train", "--model", "dlrm"]}  # the command's name until 0.x


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and where to look, not the whole usage."""

    def parse_known_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)  # for the hint in `error`
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        hint = _owners_hint(message, getattr(self, "argv", []))
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _owners_hint(message: str, argv: list[str]) -> str:
    """For flags this command of this model lacks: the models whose same command has them
    (each model lists only its own), else this model's commands that have them."""
    if not message.startswith("unrecognized arguments:"):
        return ""
    flags = [word.split("=")[0] for word in message.split(":", 1)[1].split()
             if word.startswith("--")]
    model = model_in(argv)
    command = next((word for word in argv if word in _flags_of(model)), None)
    hints = []
    for flag in flags:
        models = [name for name in names() if flag in _flags_of(name).get(command, ())]
        commands = [name for name, flags in _flags_of(model).items() if flag in flags]
        if models:
            hints.append(f"{flag} is a flag of --model {' or '.join(models)}")
        elif commands:
            quoted = [f"`{name}`" for name in commands]
            listed = (f"{', '.join(quoted[:-1])} and {quoted[-1]}" if len(quoted) > 1
                      else quoted[0])
            hints.append(f"{flag} is a flag of {listed}, not of `{command}`")
    return f"; {', '.join(hints)}" if hints else ""


@functools.cache  # every word of a bad command line asks again
def _flags_of(model: str) -> dict[str, set[str]]:
    """Each command's flags with `--model model`."""
    parser = build_parser(model)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {flag for action in command._actions for flag in action.option_strings}
            for name, command in commands.choices.items()}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"cce-tune: {category.__name__}: {message}\n"


def add_model_argument(parser: argparse.ArgumentParser, family: Family) -> None:
    parser.add_argument(
        "--model", choices=names(), default=DEFAULT,
        help=f"the model family (default: {DEFAULT}): {family.name}, {family.help}; this help "
             "lists its flags, --model NAME --help another's")


def build_parser(model: str = DEFAULT) -> argparse.ArgumentParser:
    family = get(model)
    parser = Parser(
        prog="cce-tune",
        description="Tune sequential recommenders under a GPU memory budget.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="prepare a sequence dataset and print its summary")
    add_data_arguments(data)

    train = commands.add_parser("train", help="train one configuration and report quality, "
                                              "time and memory")
    add_model_argument(train, family)
    family.add_train_arguments(train)

    estimate = commands.add_parser(
        "estimate", help="print the peak-memory breakdown of a configuration, no GPU needed")
    add_model_argument(estimate, family)
    family.add_arguments(estimate, "estimate")
    add_estimate_arguments(estimate)

    add_verify_parser(commands)
    tune = add_tune_parser(commands)
    add_model_argument(tune, family)
    family.add_arguments(tune, "tune")
    add_report_parser(commands)
    add_replay_parser(commands)
    return parser


def model_in(argv: Sequence[str]) -> str:
    """The `--model` the command line names (the default if none): the parser depends on it."""
    peek = argparse.ArgumentParser(prog="cce-tune", add_help=False, exit_on_error=False)
    peek.add_argument("--model", default=DEFAULT)
    try:
        model = peek.parse_known_args(list(argv))[0].model
    except argparse.ArgumentError:  # `--model` without a name: the real parser says so
        return DEFAULT
    get(model)  # an unknown name fails here, naming the known ones
    return model


def run_data(args: argparse.Namespace) -> None:
    from cce_tune.tuner.data import load

    print(load(data_options(args)).summary())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ALIASES:
        argv = [*ALIASES[argv[0]], *argv[1:]]
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "tune")  # `cce-tune --gpu-mem 40GB ...` is `cce-tune tune ...`
    try:
        parser = build_parser(model_in(argv))
    except CceTuneError as error:
        print(f"cce-tune: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    use_expandable_segments()
    warnings.formatwarning = _one_line_warning  # a warning is a line, not a source excerpt
    try:
        commands = {"data": run_data, "train": lambda a: get(a.model).run_train(a),
                    "estimate": lambda a: get(a.model).run_estimate(a),
                    "verify-memory": run_verify, "tune": run_tune, "report": run_report,
                    "replay": run_replay}
        commands[args.command](args)
    except CceTuneError as error:
        print(f"cce-tune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cce-tune: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
