"""From exported models to the served champion: one home for packaging, registry and promotion.

- :mod:`.candidates`: what would be packaged (files + manifest fields) and its gate records;
- :mod:`.store`: the artifact store ``artifacts/<model>/<version>/`` (versions allocated and
  written under a file lock, never overwritten) and its ``aliases.json`` mirror;
- :mod:`.registry`: the MLflow model registry (versions, tags, the ``champion`` alias history);
- :mod:`.promotion`: compare a candidate with the champion (MLflow ``MetricThreshold``
  semantics), promote, roll back, and the evaluators that score both on the same data.

Nothing here imports ``pipelines``: stages and the CLI build configs and MLflow set-up, then call
these functions with plain arguments.
"""
