"""The Pulse model image: SageMaker's bring-your-own-container contract for training jobs, endpoints
and Batch Transform, so that production trains and serves the same default pipeline as the local
backend (both families, the family picked on validation, calibration).

- `layout`: the `/opt/ml` folders SageMaker mounts (any root stands for it outside a container);
- `train`: hyperparameters and channels in, the model file and its facts (`pulse-model.json`)
  into the model folder, a failure's reason into `output/failure`;
- `serve`: the model folder behind `/ping` and `/invocations` on 0.0.0.0:8080 (the local model
  server's routes and limits, the model read from the folder rather than a workspace).

Run as the image runs them: `python -m services.container train|serve [--root /opt/ml]`.

May import: model, lifecycle (the pipeline's datasets, registry file names, the model server).
"""
