"""Who may read a site's reports and manage sites, keys and tokens, decided from the credential
a request presents (core.access has the rules). The grants and the sites' visibility are read
from the CREDENTIALS_BUCKET and SITES_BUCKET, watched into memory: a request costs two
dictionary lookups, and a revocation made at any report server applies here within moments
(at once when made here)."""

from __future__ import annotations

import logging

from core.access import PUBLIC, Grant, identify, require_admin, require_read
from core.events import site_id_violations
from core.kv_watch import WatchedBucket
from core.settings import Settings
from core.site_records import SiteRecord

logger = logging.getLogger(__name__)


class ReportGate:
    def __init__(
        self,
        grants: WatchedBucket[Grant],
        sites: WatchedBucket[SiteRecord],
        *,
        reports_open: bool = False,
        admin_open: bool = False,
    ) -> None:
        self._grants = grants
        self._sites = sites
        self._reports_open = reports_open
        self._admin_open = admin_open

    def read(self, secret: str | None, site_id: str) -> None:
        """Raise Unauthenticated or PermissionDenied unless a request presenting `secret` may
        read the reports of `site_id`. A site_id that is missing or malformed names no site:
        only the credential is checked, and the request is refused for the site_id (400)."""
        grant = identify(secret, self._grants.values)
        if site_id_violations(site_id):
            return
        record = self._sites.get(site_id)
        public = self._reports_open or (record is not None and record.report_visibility == PUBLIC)
        require_read(grant, site_id, public=public)

    def admin(self, secret: str | None) -> None:
        """Raise unless `secret` is the admin token (or ADMIN_OPEN lets anyone manage)."""
        require_admin(identify(secret, self._grants.values), admin_open=self._admin_open)


def log_access(settings: Settings) -> None:
    """Say loudly at start what is open without a credential."""
    if settings.reports_open:
        logger.warning(
            "REPORTS_OPEN=1: anyone who reaches this server may read every site's reports "
            "without a token"
        )
    else:
        logger.info("reports are private: a read token is needed but for public sites")
    if settings.admin_open:
        logger.warning(
            "ADMIN_OPEN=1: anyone who reaches this server may manage sites, keys and tokens "
            "without the admin token"
        )
