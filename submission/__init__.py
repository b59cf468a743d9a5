"""The AutoDL ``model.py`` built on the rest of the project.

Packaging a self-contained submission zip, and the self-service run on a user's own
dataset with predictions for its unlabelled data.
"""
