"""The review queue: annotators claim one unrecognized message at a time, label it, skip it, undo.
Labels are append-only records (`labels`); the queue, claims and action log live in the store so
any replica serves any annotator (`labeling`).

Imports store, model, access.
"""
