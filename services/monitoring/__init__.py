"""Watching people and the model: alerts and their rules (`alerts`), model health and drift
(`health`), the review threshold in force, and what scoring costs (`costs`).

Imports store, model, access and checkins (scored partitions).
"""
