"""Trained reference weights for the tiny ``*_test`` models: the task they learned, how they were trained,
and the held-out evaluation that later gates (FP16, INT8, CPU graphs) reuse.

    task.py         the procedural shape task (numpy): scenes, rendering at any size, seed streams
    training.py     per-family training recipes with the papers' training features (deterministic)
    evaluate.py     top-1 accuracy / agreement of runners on held-out images; the evaluation protocol
    checkpoints.py  where weights/ and the training records live; ``reference_model(name)``
    report.py       the README's accuracy table from the records

Nothing here is imported by ``import resvit_export``; torch is only needed by ``training`` and
``checkpoints.reference_model``.
"""
