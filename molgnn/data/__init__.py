"""Data: table reading, cached graph featurization, splits, target scaling, DataModules."""
