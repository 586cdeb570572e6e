"""The ``mlflow-green`` command line."""
