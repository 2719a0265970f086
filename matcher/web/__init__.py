"""The web app: self-service opt-out, the review queue, and the upload check API.

A thin shell over :mod:`matcher.services`, on the same database and policy
rules as the command line: one router per audience (:mod:`.person`,
:mod:`.reviewer`, :mod:`.api`), and one module for what keeps it safe
(:mod:`.security`). Pages are server-rendered HTML forms that work without
JavaScript.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os

from fastapi import FastAPI

from matcher.clock import SYSTEM_CLOCK, Clock
from matcher.policy import Policy, load_policy
from matcher.services import open_session
from matcher.web import api, person, reviewer, security
from matcher.web.context import WebContext, WebSettings

__all__ = ["WebSettings", "app_from_environment", "create_app", "factory_environment"]

# What `serve --workers N` hands each server process (the database, the rules file, the settings).
FACTORY_VARIABLE = "CONSENT_MATCHER_WEB_APP"


def factory_environment(db_path: str, policy_path: str, settings: WebSettings) -> dict[str, str]:
    return {FACTORY_VARIABLE: json.dumps({"db": str(db_path), "policy": policy_path,
                                          "settings": dataclasses.asdict(settings)})}


def app_from_environment() -> FastAPI:
    """The app of one server process of several (uvicorn's app factory): each builds its own."""
    config = json.loads(os.environ[FACTORY_VARIABLE])
    return create_app(config["db"], load_policy(config["policy"]), WebSettings(**config["settings"]))


def create_app(db_path: str, policy: Policy, settings: WebSettings = WebSettings(),
               clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    """The web app on the database at ``db_path`` under ``policy``."""
    open_session(db_path, policy, clock=clock).close()  # a bad path fails now, and stale decisions are refreshed
    web = WebContext(str(db_path), policy, settings, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        web.face_work.close()

    app = FastAPI(
        title="consent-matcher",
        summary="Check uploads against people who opted out of having their photos shared.",
        docs_url=None, redoc_url=None,  # the schema stays at /openapi.json
        lifespan=lifespan,
    )
    app.state.web = web
    security.install(app, settings.max_upload_bytes, lambda key: api.key_holder(web, key))
    for router in (person.router, reviewer.router, api.router):
        app.include_router(router)
    return app
