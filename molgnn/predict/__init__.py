"""Streaming batch prediction over SMILES files (molgnn/predict/driver.py; being split into modules)."""

from molgnn.predict.driver import *  # noqa: F403
