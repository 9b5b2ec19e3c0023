"""The ground floor: light code every layer shares, serving included.

Atomic writes (``atomic``), the one JSON reader (``io``), the learner-event schema
(``schema``) and the feature kernel that the batch build and serving both run (``kernel``,
``online``, ``summary``, ``spec``). Standard library and numpy only, and no import of any other
package of this repository: ``serving`` stands on it, and the ``ludora-serving`` wheel carries it
whole (as ``ludora_serving._core``; export/serving_dist.py checks both).
"""
