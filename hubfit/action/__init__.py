"""The GitHub Action on model repositories (``python -m hubfit.action``)."""
