"""The Forge worker: a Celery worker on Redis that runs model-generation jobs."""
