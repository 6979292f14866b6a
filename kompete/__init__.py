"""kompete: win Kaggle's generative-image competitions from one YAML file per competition."""

__version__ = "0.1.0"
