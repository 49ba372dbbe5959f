"""The model, with no store and no AWS in sight: text preprocessing shared by training and scoring
(`text`), what every family gives (`prediction`: labels, `Prediction`, the `Model` protocol),
hyperparameters (`params`), the fastText and linear families, calibration, metrics (`evaluation`),
the shipped bootstrap corpus (`corpus`, data in `data/`) and the benchmark command's core.

May import: nothing but `services.errors` and `services.config`.
"""
