"""`mltp render`: the state machine definition, from the config alone."""

from ..config import Config


def render(cfg: Config) -> str:
    from .. import definition

    return definition.render(cfg)
