"""The base of every settings model, and how a settings error is shown to the person who wrote it."""

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_errors(title: str, error: ValidationError) -> str:
    """One line per problem, naming the setting by its dotted path."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown setting" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {where}: {message}")
    return f"{title}:\n" + "\n".join(lines)
