"""`mltp schema`: the JSON Schema of config.yaml (for editors)."""


def schema() -> str:
    import json

    from ..config_schema import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True)
