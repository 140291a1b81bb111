"""mltp: model repo -> trained, gated and registered SageMaker model, via Step Functions."""

__version__ = "0.1.0"
