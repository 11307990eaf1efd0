"""MLflow: ``mlflow models serve`` scoring servers, and discovery through a model registry."""
