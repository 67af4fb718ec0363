"""Runners: what executes a model's steps (the interface, the registry, the stub runner). They
know nothing of SQL, Celery or S3: the executor hands each step a StepContext."""
