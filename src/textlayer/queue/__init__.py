"""The work queue: the Celery app (configured from Settings), thin tasks, the job recipe, the reconciler."""
