"""The signing page behind each emailed link, the portal where people sign in
to see, sign and submit their documents (/p/), and the signer's public
endpoints: the signed PDF for the submitter, the root certificate, verification, and the
check page behind the verification code printed on every signed page;
and, for the notifier alone (a key with the ``links`` scope), the internal
endpoint that makes the link a mail carries at the moment it is sent; and the
operators' pages (/p/ops/): documents, a document's timeline, the live stream."""

from fastapi import FastAPI

from services.signer.http._bulk import bulk_routes
from services.signer.http._check import check_routes
from services.signer.http._deps import SignerHttpDeps, VerifyLimits
from services.signer.http._figures import figures_routes
from services.signer.http._incidents import incident_routes
from services.signer.http._internal import LinkRequest, internal_routes
from services.signer.http._ops import ops_routes
from services.signer.http._pages import Pages
from services.signer.http._portal import portal_routes
from services.signer.http._portal_auth import PortalAuth, PortalConfig, sign_in_routes
from services.signer.http._signing import SigningPages, download_routes, signing_routes
from services.signer.http._verify import RateLimit, trust_routes
from services.signer.live import AuditFeed
from shared.http import base_app

__all__ = ["LinkRequest", "PortalConfig", "RateLimit", "SignerHttpDeps", "VerifyLimits", "build_http"]


async def _no_listener() -> None:
    raise RuntimeError("no audit feed: streams read the audit log at each heartbeat")


def build_http(deps: SignerHttpDeps, portal: PortalConfig | None = None) -> FastAPI:
    app = base_app("signer", deps.pool, docs=deps.docs)
    pages = Pages(csrf_secret=deps.csrf_secret, timezone=deps.stamping.timezone, secure_cookies=deps.secure_cookies)
    app.include_router(signing_routes(deps, pages))
    app.include_router(download_routes(deps, pages))
    app.include_router(internal_routes(deps))
    app.include_router(trust_routes(deps))
    app.include_router(check_routes(deps))
    auth = PortalAuth(deps, portal or PortalConfig())
    app.include_router(sign_in_routes(auth))
    app.include_router(portal_routes(auth))
    app.include_router(bulk_routes(auth, SigningPages(deps, pages)))
    app.include_router(figures_routes(auth))
    app.include_router(incident_routes(auth, stuck_after=deps.stuck_after))
    app.include_router(ops_routes(auth, deps.audit_feed or AuditFeed(_no_listener)))
    return app
