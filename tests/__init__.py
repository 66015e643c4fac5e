"""Test helpers shared by several modules."""


def arg_values(args: list[str]) -> dict[str, str]:
    """The job template's `--name=value` arguments as {"--name": "value"} (a bare flag maps to "")."""
    return {name: value for name, _, value in (a.partition("=") for a in args if a.startswith("--"))}
