"""The review queue: annotators claim one unrecognized message at a time, label it, skip it, undo.

`labeling.LabelingService` is the one entry point; it composes parts with one job each: the items
waiting (`items`), the queue's order (`queue`), claims on items through the store's one lease
(`claims`), this replica's walk to the next free item (`picking`), each annotator's action log
(`actions`), the append-only labels and their retractions (`labels`), double labels and Cohen's
kappa (`agreement`) and re-ranking by a new model (`rerank`). Everything lives in the store, so any
replica serves any annotator.

May import: store, model, access.
"""
