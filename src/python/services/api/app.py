"""The api's ASGI application: `create_app(settings)` builds it; `app` is the one uvicorn serves
(`services.api.app:app`)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.routing import APIRoute

from modules.buildinfo import VERSION
from modules.jobs.models import ModelCache
from modules.observability import job_metrics
from modules.observability.logs import apply_process_settings
from modules.observability.metrics import set_build_info
from modules.persistence.engine import create_async_database_engine, create_session_factory
from modules.persistence.schema import ExpectedSchema
from modules.settings import Settings, load_settings
from modules.storage.s3 import make_s3_client, sign_artifact_url
from services.api.auth import KeyCache
from services.api.dependencies import JobsContext
from services.api.following import Follower, SharedReads
from services.api.middleware import BodyLimitMiddleware, RequestLifecycleMiddleware
from services.api.notifications import JobNotifier
from services.api.openapi import ERROR_RESPONSES, ForgeAPI
from services.api.problems import install_problem_handlers
from services.api.readiness import ReadinessChecker
from services.api.routers import health, metrics, v1


def _operation_id(route: APIRoute) -> str:
    # Stable operationIds: the endpoint function's name, independent of path and method.
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Connections open lazily; creating the engine and clients here touches no network.
        engine = create_async_database_engine(settings)
        s3 = make_s3_client(settings, timeout_s=settings.readiness_storage_timeout_s)
        app.state.readiness = ReadinessChecker(
            settings, engine, ExpectedSchema.from_migrations(), s3
        )
        app.state.sessions = create_session_factory(engine)  # see services.api.dependencies
        app.state.keys = KeyCache(settings.api_key_cache_s)
        app.state.jobs = JobsContext(
            max_attempts=settings.job_max_attempts,
            max_input_bytes=settings.job_max_input_bytes,
            max_queued=settings.job_max_queued_per_owner,
            queue_full_retry_after_s=settings.job_queue_full_retry_after_s,
            models=ModelCache(),
            sign=partial(sign_artifact_url, settings),
            on_submitted=job_metrics.observe_job_submitted,
            on_finished=job_metrics.observe_job_finished,
        )
        # Its connection opens in the background and reopens after failures: the api serves
        # (and event readers poll) while PostgreSQL is away.
        notifier = JobNotifier(settings)
        notifier.start()
        app.state.follower = Follower(
            app.state.sessions,
            notifier,
            settings.events_heartbeat_s,
            SharedReads(app.state.sessions),
        )
        try:
            yield
        finally:
            await notifier.stop()
            await engine.dispose()

    app = ForgeAPI(
        title="Forge API",
        version=VERSION,
        description="Submit model-generation jobs and fetch their artifacts.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        responses=ERROR_RESPONSES,
    )
    set_build_info("api")
    install_problem_handlers(app)
    # Inside the lifecycle middleware, so a 413 has a request ID, metrics and an access line.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestLifecycleMiddleware)
    health.add_routes(app)
    metrics.add_routes(app)
    app.include_router(v1.router)
    return app


# uvicorn configures logging in each worker process it starts (services.api.main passes the
# configuration); the rest applies from the moment a worker loads the app.
apply_process_settings()
app = create_app()
